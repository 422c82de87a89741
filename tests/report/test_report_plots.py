import xml.etree.ElementTree as ET

import pytest
import torch

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402 - pillow comes with matplotlib

from filterprune.report import (  # noqa: E402
    iteration_table,
    layer_table,
    plot_channels,
    plot_latency_vs_macs,
    plot_metric_vs_macs,
    plot_score_distributions,
    write_summary,
)
from filterprune.report.summary import split_columns

BEFORE = {"stem": 64, "down1": 128, "down2": 256, "up1": 128}
AFTER = {"stem": 13, "down1": 74, "down2": 182, "up1": 68}
ROWS = [
    {"iteration": 0, "metrics": {"dice": 0.985}, "macs": 2_000_000_000, "latency_ms": 40.0},
    {"iteration": 1, "metrics": {"dice": 0.948}, "macs": 1_600_000_000, "latency_ms": 34.0},
    {"iteration": 2, "metrics": {"dice": 0.955}, "macs": 1_000_000_000, "latency_ms": 25.0},
]


def assert_images(paths):
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg" and png.stem == svg.stem
    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    with Image.open(png) as image:
        image.verify()
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_plot_channels(tmp_path):
    paths = plot_channels(BEFORE, AFTER, tmp_path / "figs" / "channels.png")
    assert paths[0] == tmp_path / "figs" / "channels.png"
    assert_images(paths)


def test_metric_and_latency_plots_accept_rows_or_table(tmp_path):
    assert_images(plot_metric_vs_macs(ROWS, "dice", tmp_path / "dice"))
    assert_images(plot_metric_vs_macs(iteration_table(ROWS), "dice", tmp_path / "dice_t"))
    assert_images(plot_latency_vs_macs(ROWS, tmp_path / "latency"))
    with pytest.raises(ValueError, match="metric 'iou'"):
        plot_metric_vs_macs(ROWS, "iou", tmp_path / "iou")


def test_plot_score_distributions(tmp_path):
    torch.manual_seed(0)
    scores = {
        1: {"stem": torch.rand(64), "down1": torch.rand(128)},
        2: {"stem": [0.1, 0.2, float("nan")], "down1": torch.rand(74), "up1": torch.rand(5)},
    }
    assert_images(plot_score_distributions(scores, tmp_path / "scores"))


def test_write_summary_embeds_tables_and_images(tmp_path):
    images = [plot_channels(BEFORE, AFTER, tmp_path / "run" / "plots" / "channels")]
    path = write_summary(
        tmp_path / "run",
        iteration_table=iteration_table(ROWS),
        layer_table=layer_table(before=BEFORE, after=AFTER),
        images=images,
    )
    text = path.read_text(encoding="utf-8")
    assert path.name == "summary.md"
    assert "## Pruning iterations" in text and "## Channels per layer" in text
    assert "| stem | 64 | 13 | 51 | 79.7 |" in text
    assert "![channels](plots/channels.png)" in text and "channels.svg" not in text
    page = (tmp_path / "run" / "summary.html").read_text(encoding="utf-8")
    # the page shows the columns with values; here they fit in one table, and a wider table
    # is split into parts that each start with the iteration
    shown = iteration_table(ROWS).with_values()
    assert shown.keys == ["iteration", "metric:dice", "delta:dice", "macs",
                          "macs_reduction_pct", "latency_ms"]  # fmt: skip
    assert len(split_columns(shown)) == 1 and page.count("<table>") == 2
    assert "Speed-up" not in page and "Params" not in page
    parts = split_columns(shown, limit=3)
    assert len(parts) == 3 and all(p.keys[0] == "iteration" for p in parts)
    assert sorted(k for p in parts for k in p.keys[1:]) == sorted(shown.keys[1:])
    assert '<img src="plots/channels.png"' in page
