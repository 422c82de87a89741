"""The report of a real (tiny) pruning run, checked against hand-computed counts.

CatNet (report_tiny.py) concatenates two convs: a double count of the concatenated channels would
show in the per-layer table. One iteration of L1 pruning at amount 0.5 per group removes 3 of a's
6 channels, 2 of b's 4 and 4 of c's 8; fc's 2 outputs are the model's output and stay.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest
import torch
from report_tiny import make_catnet

import filterprune as fp
from filterprune.cli import main
from filterprune.loop import PruneConfig, RunDir, run_pruning, write_run_report
from filterprune.report import table_from_json
from filterprune.report.summary import split_columns

pytest.importorskip("safetensors")

X = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3))
LATENCY = {
    "batch_sizes": [1, 2],
    "devices": ["cpu"],
    "threads": 1,
    "rounds": 3,
    "repeats": 3,
    "warmup": 1,
    "min_run_time": 0.0,
}

# Hand counts on an 8x8 input (64 positions); a 3x3 conv has out*in*9 weights + out biases and
# out*in*9*64 MACs; fc has out*in + out parameters and out*in MACs.
PARAMS_0 = (6 * 3 * 9 + 6) + (4 * 3 * 9 + 4) + (8 * 10 * 9 + 8) + (2 * 8 + 2)  # 168+112+728+18
MACS_0 = 6 * 27 * 64 + 4 * 27 * 64 + 8 * 90 * 64 + 2 * 8  # 10368 + 6912 + 46080 + 16
PARAMS_1 = (3 * 3 * 9 + 3) + (2 * 3 * 9 + 2) + (4 * 5 * 9 + 4) + (2 * 4 + 2)  # 84+56+184+10
MACS_1 = 3 * 27 * 64 + 2 * 27 * 64 + 4 * 45 * 64 + 2 * 4  # 5184 + 3456 + 11520 + 8


def _evaluate(model: torch.nn.Module) -> dict[str, float]:
    with torch.no_grad():
        return {"mean_out": float(model(X).mean())}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("report_run") / "run"
    config = PruneConfig(
        amount=0.5, scope="per_group", max_iterations=1, measure_latency=True, latency=LATENCY
    )
    result = run_pruning(
        make_catnet(), X, config=config, evaluate=_evaluate, run_dir=path, progress=False
    )
    assert result.stop_reason == "max_iterations"
    (path / "model.json").write_text(
        json.dumps(
            {"model": "report_tiny:make_catnet", "model_args": {}, "input_shape": [1, 3, 8, 8]}
        )
    )
    return path


def test_hand_counts_are_what_the_formulas_say():
    assert (PARAMS_0, MACS_0) == (1026, 63376)
    assert (PARAMS_1, MACS_1) == (334, 20168)


def test_iteration_table_matches_hand_counts(run_dir):
    report = write_run_report(run_dir, plots=False)
    table = report.iterations
    assert table.column("iteration") == [0, 1]
    assert table.column("params") == [PARAMS_0, PARAMS_1]
    assert table.column("macs") == [MACS_0, MACS_1]
    assert table.column("removed") == [0, 3 + 2 + 4]
    assert table.column("removed_total") == [0, 9]
    assert table.column("ranking_batches") == [0, 0]  # L1 ranks without data
    assert table.column("params_reduction_pct") == pytest.approx([0.0, 692 / 1026 * 100])
    assert table.column("macs_reduction_pct") == pytest.approx([0.0, 43208 / 63376 * 100])
    # size: the safetensors checkpoint holds the float32 weights plus a small JSON header
    sizes = [s * 1e6 for s in table.column("size_mb")]
    for size, params in zip(sizes, (PARAMS_0, PARAMS_1), strict=True):
        assert 0 < size - 4 * params < 1000
    on_disk = (run_dir / "iter_001" / "weights.safetensors").stat().st_size
    assert sizes[1] == on_disk
    assert table.column("size_reduction_pct")[1] == pytest.approx(
        (sizes[0] - sizes[1]) / sizes[0] * 100
    )
    # speed-up: the logged side-by-side comparison (median round ratio), never a division of
    # two rows' latencies; efficiency = speed-up / (MACS_0 / MACS_1)
    rows = RunDir(run_dir).read_rows()
    # row 0, the original, is the reference: its A/A figure is noise, in the notes only
    assert table.rows[0]["speedup"] == "reference" and table.rows[0]["efficiency"] is None
    assert any(f"it read {rows[0]['speedup']:.2f}x" in note for note in table.notes)
    for row, logged in zip(table.rows[1:], rows[1:], strict=True):
        assert row["speedup"] == logged["speedup"] and row["speedup"] > 0
        low, high = logged["speedup_low"], logged["speedup_high"]
        assert low <= row["speedup"] <= high
        assert row["speedup_range"] == f"{low:.2f}–{high:.2f}"
        assert row["original_latency_ms"] == logged["original_latency_ms"] > 0
        assert row["latency_flags"] == (", ".join(logged["latency_flags"]) or "–")
    speedup = table.column("speedup")[1]
    assert table.column("efficiency")[1] == pytest.approx(speedup * MACS_1 / MACS_0)
    assert all(iqr >= 0 for iqr in table.column("latency_iqr_ms"))
    # the written JSON holds the same raw numbers
    assert table_from_json((run_dir / "report" / "iterations.json").read_text()) == table


def test_layer_table_counts_concatenated_channels_once(run_dir):
    table = write_run_report(run_dir, plots=False).layers
    assert table.column("layer") == ["a", "b", "c", "fc"]
    assert table.column("before") == [6, 4, 8, 2]
    assert table.column("after") == [3, 2, 4, 2]
    assert table.column("removed") == [3, 2, 4, 0]
    assert table.column("pct_of_layer") == pytest.approx([50.0, 50.0, 50.0, 0.0])
    assert table.column("pct_of_removed") == pytest.approx([300 / 9, 200 / 9, 400 / 9, 0.0])
    assert table.notes == ["Total: 20 → 11 channels, 9 removed (45.0 %)"]


def test_latency_table_has_every_batch_size_and_efficiency(run_dir):
    table = write_run_report(run_dir, plots=False).latency
    keys = [(r["iteration"], r["device"], r["batch_size"]) for r in table.rows]
    assert keys == [(0, "cpu", 1), (0, "cpu", 2), (1, "cpu", 1), (1, "cpu", 2)]
    assert table.column("macs") == [MACS_0, 2 * MACS_0, MACS_1, 2 * MACS_1]
    assert table.column("threads") == [1, 1, 1, 1]
    records = [rec for row in RunDir(run_dir).read_rows() for rec in row["latency"]]
    for row, record in zip(table.rows, records, strict=True):
        speedup = record["speedup"]  # the original timed beside this model, 3 rounds
        assert len(record["round_speedups"]) == row["rounds"] == 3
        assert sorted(record["round_speedups"])[1] == pytest.approx(speedup)  # the median
        assert row["original_ms"] == record["original_median_ms"] > 0
        ratio = MACS_0 / MACS_1 if row["iteration"] == 1 else 1.0
        assert row["macs_ratio"] == pytest.approx(ratio)
        if row["iteration"] == 0:  # the original beside its own copy: the reference, no figure
            assert row["speedup"] == "reference" and row["efficiency"] is None
            continue
        assert row["speedup"] == speedup
        assert row["efficiency"] == pytest.approx(speedup / ratio)
        assert row["median_ms"] > 0 and row["iqr_ms"] >= 0 and row["calls"] >= 9


def test_scores_of_each_iteration_are_saved(run_dir):
    scores = RunDir(run_dir).read_scores("iter_001")
    assert {k: len(v) for k, v in scores.items()} == {"a": 6, "b": 4, "c": 8}
    expected = fp.rank(make_catnet(), X, criterion="l1", flops_reg=0)  # per group: no cost term
    for name, values in expected.items():
        assert scores[name] == pytest.approx(values.tolist())
    assert RunDir(run_dir).read_scores("iter_000") is None


def _assert_image(png, svg):
    from PIL import Image

    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    with Image.open(png) as image:
        image.verify()
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_report_draws_every_figure_and_a_summary(run_dir, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "rep"
    report = write_run_report(run_dir, out_dir=out)
    for stem in ("overview", "channels", "mean_out_vs_macs", "latency_vs_macs", "scores"):
        _assert_image(out / f"{stem}.png", out / f"{stem}.svg")
    summary = (out / "summary.md").read_text(encoding="utf-8")
    for heading in ("## Pruning iterations", "## Channels per layer", "## Latency"):
        assert heading in summary
    assert "![scores](scores.png)" in summary
    page = (out / "summary.html").read_text(encoding="utf-8")
    parts = sum(len(split_columns(t)) for t in (report.iterations, report.layers, report.latency))
    assert page.count("<table>") == 1 + parts and "<caption>Run settings</caption>" in page
    assert {p.name for p in report.files} >= {"latency.csv", "layers.json", "scores.svg"}
    # what `filterprune report` counts is what the folder holds (its record file aside)
    shown = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert sorted(p.name for p in report.files) == sorted(shown)


def test_deployment_checks_of_original_and_final(run_dir, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path / "rep"
    report = write_run_report(
        run_dir, out_dir=out, plots=False, deploy=True, model_factory=make_catnet, example_inputs=X
    )
    rows = {r["model"]: r for r in report.deploy.rows}
    for label in ("original", "final"):
        row = rows[label]
        assert row["torch_export"] == row["torchscript"] == row["onnx_parity"] == "yes"
        assert row["onnx_max_abs_diff"] < 1e-5 and row["ort_latency_ms"] > 0
    assert rows["final"]["onnx_mb"] < rows["original"]["onnx_mb"]
    assert report.deploy.notes == []  # nothing the original passes fails after pruning
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: X.numpy()})
    pruned = fp.loop.load(run_dir, make_catnet)
    assert torch.allclose(torch.from_numpy(output), pruned(X).detach(), atol=1e-5)
    checks = json.loads((out / "deploy_checks.json").read_text())
    assert [c["label"] for c in checks] == ["original", "final"]
    with pytest.raises(ValueError, match="model_factory"):
        write_run_report(run_dir, deploy=True)


def test_cli_report_with_onnx(run_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    # model.json names a test module's factory: filterprune imports it only when told to
    code = main([str(a) for a in ("report", run_dir, "--out", tmp_path / "cli", "--onnx",
                                  "--no-plots", "--onnx-threads", "1", "-q",
                                  "--model", "report_tiny:make_catnet", "--trust-model-code")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "| Model | torch.export | TorchScript |" in out and "| Producing layer(s) |" in out
    assert (tmp_path / "cli" / "model.onnx").stat().st_size > 0
    data = json.loads((tmp_path / "cli" / "deploy.json").read_text())
    assert [r["onnx_parity"] for r in data["rows"]] == ["yes", "yes"]
    assert math.isfinite(data["rows"][1]["ort_latency_ms"]) and "ort_speedup" not in data["rows"][1]
