"""The latency staircase: one conv layer's time against its number of filters, on this machine.

Times a 3x3 convolution (and a 1x1) at every output width from 40 to 80 with the latency lookup
table's method (the fastest of five short blocks per width, :mod:`filterprune.measure.latency_table`),
at batch 1 and 16, one thread, and writes one JSON object with the times and the widths where the
time steps up. This is the evidence behind ``widths="measured"``: where the steps are, and that
they depend on the batch size, so one global ``round_to`` cannot fit.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_staircase.py \\
        --out benchmarks/results/staircase.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from filterprune.measure import machine_info  # noqa: E402
from filterprune.measure.latency_table import LatencyTable, LayerShape  # noqa: E402

LAYERS = {  # name: (cin, kernel, spatial)
    "conv3x3 64->w at 14x14": (64, 3, 14),
    "conv3x3 128->w at 7x7": (128, 3, 7),
    "conv1x1 128->w at 14x14": (128, 1, 14),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--widths", type=int, nargs=2, default=[40, 80])
    args = parser.parse_args()
    torch.manual_seed(0)
    table = LatencyTable(threads=1, cache_dir=False)
    result = {"machine": machine_info(), "threads": 1, "layers": []}
    for name, (cin, k, hw) in LAYERS.items():
        for batch in (1, 16):
            conv = torch.nn.Conv2d(cin, args.widths[1], k, padding=k // 2)
            shape = LayerShape.of(conv, torch.randn(batch, cin, hw, hw))
            widths = list(range(args.widths[0], args.widths[1] + 1))
            # two passes in opposite orders; the faster of the two per width
            first = {w: table.layer_ms(shape, cin, w) for w in widths}
            table.entries.clear()
            second = {w: table.layer_ms(shape, cin, w) for w in reversed(widths)}
            table.entries.clear()
            ms = {w: min(first[w], second[w]) for w in widths}
            steps = [w for w in widths[1:] if ms[w] > 1.15 * ms[w - 1]]
            result["layers"].append({"layer": name, "batch": batch, "ms": ms, "steps_up_at": steps})
            print(f"{name}, batch {batch}: steps up at {steps}", flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
