"""Seed 000's own files for the documented commands: a milesial-2018 U-Net checkpoint and its
channel file, written into a work folder that already holds ``data/carvana``.

Used by tests/test_docs_blocks.py and by benchmarks/bench_readme.py (which times the same
commands), so both run them on files of the same layout.
"""

from __future__ import annotations

import re
from pathlib import Path


def seed_checkpoint(work: Path, epochs: int = 60) -> None:
    """The seed project's files, in its own layout: a milesial/Pytorch-UNet (2018) state dict
    saved from ``nn.DataParallel`` (``module.`` prefix, milesial's key names, conv biases) and its
    22-line channel file whose up-block lines give the concatenated width. Narrow widths keep
    the documented commands quick; tests/models/test_seed_unet_files.py checks the layout
    against an independent implementation at the seed's own widths."""
    import torch

    from filterprune.recipes.data import load_data
    from filterprune.store import unet_from_channels, write_channel_txt

    convs = [4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4]  # 18 convs, head left out
    torch.manual_seed(0)
    model, _ = unet_from_channels(convs, layout="2018", bilinear=True)
    # a trained model, as the seed's is: a short training on the same tiny folder
    data = load_data("segment", data=work / "data" / "carvana", seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    model.train()
    for _ in range(epochs):
        for inputs, targets in data.train_loader:
            loss = data.task.loss(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    names = {  # ours -> milesial 2018
        r"^inc\.": "inc.conv.conv.",
        r"^(down\d)\.1\.": r"\1.mpconv.1.conv.",
        r"^(up\d)\.conv\.": r"\1.conv.conv.",
        r"^outc\.": "outc.conv.",
    }
    state = {}
    for key, value in model.state_dict().items():
        for pattern, new in names.items():
            key = re.sub(pattern, new, key)
        state["module." + key] = value
    torch.save(state, work / "seed_unet.pth")
    skips, below = [7, 5, 3, 1], [9, 11, 13, 15]  # indices into convs of each up block's inputs
    lines = list(convs[:10])
    for up in range(4):
        lines += [convs[skips[up]] + convs[below[up]], convs[10 + 2 * up], convs[11 + 2 * up]]
    write_channel_txt(work / "seed_channels.txt", lines)
