"""End to end through the Python API on a built-in task: U-Net on synthetic cars, Taylor ranking."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from filterprune.loop import PruneConfig, load, run_pruning, task_callbacks
from filterprune.models import create_model
from filterprune.tasks import builtin_data


def test_unet_on_synthetic_cars_two_iterations_and_reload(tmp_path):
    train, val = builtin_data("segment", image_size=32, num_cars=6, views_per_car=2)
    gen = torch.Generator().manual_seed(0)
    hooks = task_callbacks(
        "segment",
        DataLoader(train, batch_size=4, shuffle=True, generator=gen),
        DataLoader(val, batch_size=8),
        lr=1e-3,
        optimizer="adam",
    )
    assert hooks.metric == "dice"

    def factory():
        torch.manual_seed(0)
        return create_model("unet", base=4)

    example = val[0][0].unsqueeze(0)
    config = PruneConfig(
        criterion="taylor",
        amount=0.2,
        scope="global",
        ranking_batches=2,
        finetune=2,
        max_iterations=2,
        measure_latency=True,
        collapse_ratio=None,  # an untrained U-Net: its Dice means nothing yet
    )
    result = run_pruning(
        factory(),
        example,
        config=config,
        run_dir=tmp_path / "run",
        progress=False,
        **hooks.as_kwargs(),
    )
    assert result.stop_reason == "max_iterations"
    assert [r["iteration"] for r in result.rows] == [0, 1, 2]
    assert set(result.metrics) == {"dice", "iou", "loss"}
    assert all(r["latency_ms"] > 0 for r in result.rows)
    assert result.rows[2]["macs"] < result.rows[0]["macs"]
    assert sum(result.model.state_dict()["inc.0.weight"].shape) > 0

    reloaded = load(tmp_path / "run", factory)
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(example), result.model(example), rtol=0, atol=0)
    assert hooks.evaluate(reloaded) == result.metrics
    table = result.table()
    assert table.column("iteration") == [0, 1, 2]
    layers = result.layer_table()
    assert len(layers.rows) == 23  # 22 convs + the output conv, each counted once
