"""Latency settings, the latency/efficiency columns and the deployment table, on hand values."""

from __future__ import annotations

import pytest
import torch

from filterprune.loop import ConfigError, PruneConfig
from filterprune.measure import (
    LatencyConfig,
    compare_latencies,
    latency_fields,
    measure_latencies,
)
from filterprune.report import (
    DeployCheck,
    OnnxReport,
    deployment_table,
    iteration_table,
    latency_table,
    to_markdown,
)

FAST = {"threads": 1, "repeats": 2, "warmup": 1, "min_run_time": 0.0, "devices": ["cpu"]}


def test_latency_config_validates_and_round_trips():
    config = LatencyConfig(batch_sizes=[1, 8], input_size=[32, 32], threads=2)
    assert config.batch_sizes == (1, 8) and config.input_size == (32, 32)
    assert LatencyConfig.from_dict(config.to_dict()) == config
    for bad, match in (
        ({"batch_sizes": []}, "batch_sizes"),
        ({"batch_sizes": [0]}, "batch_sizes"),
        ({"devices": "cpu"}, "devices: need a list"),
        ({"devices": ["gpu0"]}, "devices"),
        ({"threads": 0}, "threads"),
        ({"repeats": 0}, "repeats"),
        ({"min_run_time": -1}, "min_run_time"),
        ({"input_size": [0]}, "input_size"),
    ):
        with pytest.raises(ValueError, match=match):
            LatencyConfig(**bad)
    with pytest.raises(ValueError, match="unknown keys \\['batch'\\]"):
        LatencyConfig.from_dict({"batch": 1})


def test_latency_config_inside_prune_config():
    config = PruneConfig(latency={"batch_sizes": [1, 4], "threads": 1})
    assert config.latency == LatencyConfig(batch_sizes=(1, 4), threads=1)
    assert PruneConfig.from_json(config.to_json()) == config
    assert PruneConfig.from_dict({"amount": 0.2}).latency == LatencyConfig()  # older configs
    with pytest.raises(ConfigError, match="PruneConfig.latency: LatencyConfig.threads"):
        PruneConfig(latency={"threads": -1})


def test_cuda_is_timed_only_where_present():
    devices = LatencyConfig(devices=("cpu", "cuda", "cpu")).available_devices()
    assert devices[0] == torch.device("cpu") and len(devices) == 1 + torch.cuda.is_available()


def test_measure_latencies_records_macs_of_the_timed_input(tiny, tiny_input):
    # FlattenNet: conv 3->4 (3x3) on H x W, then fc 4*8*8 -> 10 (the fc needs an 8x8 map)
    config = LatencyConfig(batch_sizes=(1, 3), **FAST)
    records = measure_latencies(tiny, tiny_input, config)
    conv, fc = 4 * 3 * 9 * 64, 10 * 256
    assert [(r["device"], r["batch_size"], r["macs"]) for r in records] == [
        ("cpu", 1, conv + fc),
        ("cpu", 3, 3 * (conv + fc)),
    ]
    fields = latency_fields(records, tiny)
    assert fields["latency_ms"] == records[0]["median_ms"] > 0
    assert fields["latency_iqr_ms"] == records[0]["iqr_ms"] and fields["latency"] == records
    assert latency_fields([], tiny) == {}

    conv_only = torch.nn.Conv2d(3, 2, 3, padding=1)  # any size: 2*3*9 MACs per pixel
    sized = LatencyConfig(input_size=(4, 5), **FAST)
    (record,) = measure_latencies(conv_only, tiny_input, sized)
    assert record["macs"] == 2 * 3 * 9 * 20
    with pytest.raises(ValueError, match="input_size"):
        measure_latencies(tiny, (tiny_input, tiny_input), sized)


def test_compare_latencies_records_both_models(tiny, tiny_input):
    small = torch.nn.Sequential(
        torch.nn.Conv2d(3, 1, 1), torch.nn.Flatten(), torch.nn.Linear(64, 10)
    )
    config = LatencyConfig(batch_sizes=(1, 2), rounds=3, **FAST)
    records = compare_latencies(tiny, small, tiny_input, config)
    assert [(r["batch_size"], r["macs"], r["original_macs"]) for r in records] == [
        (1, 3 * 64 + 640, 4 * 3 * 9 * 64 + 2560),
        (2, 2 * (3 * 64 + 640), 2 * (4 * 3 * 9 * 64 + 2560)),
    ]
    fields = latency_fields(records, small)
    first = records[0]
    assert first["rounds"] == 3 and len(first["round_speedups"]) == 3
    assert fields["speedup"] == first["speedup"] and fields["latency_ms"] == first["median_ms"]
    assert fields["original_latency_ms"] == first["original_median_ms"]
    assert fields["speedup_low"] <= fields["speedup"] <= fields["speedup_high"]
    assert fields["latency_flags"] == first["flags"]


ROWS = [
    {"iteration": 0, "macs": 2_000, "latency_ms": 40.0, "latency_iqr_ms": 1.0, "speedup": 1.0},
    {"iteration": 1, "macs": 1_600, "latency_ms": 32.0, "latency_iqr_ms": 0.5, "speedup": 1.25},
    {"iteration": 2, "macs": 1_000, "latency_ms": 25.0, "latency_iqr_ms": 0.5, "speedup": 1.6},
]


def test_iteration_table_efficiency_is_speedup_over_macs_ratio():
    table = iteration_table(ROWS)
    assert table.column("speedup") == ["reference", 1.25, pytest.approx(1.6)]
    # efficiency = speed-up / (2000 / macs): 1.25 / 1.25 and 1.6 / 2; none for the reference
    assert table.column("efficiency") == [None, pytest.approx(1.0), pytest.approx(0.8)]
    assert table.column("latency_iqr_ms") == [1.0, 0.5, 0.5]
    assert (
        "Measured speed-up: 1.60x for 2.00x fewer MACs; efficiency (speed-up / MACs ratio) = 0.80"
        in table.notes
    )


def test_latency_table_from_logged_records():
    def rec(batch, ms, macs, speedup, orig_macs, device="cpu"):
        return {"device": device, "batch_size": batch, "threads": 1, "median_ms": ms,
                "iqr_ms": 0.1, "runs": 5, "calls_per_run": 2, "macs": macs,
                "original_macs": orig_macs, "original_median_ms": ms * speedup,
                "speedup": speedup, "speedup_low": speedup - 0.1, "speedup_high": speedup + 0.1,
                "rounds": 3, "flags": ["noisy model"] if device != "cpu" else []}  # fmt: skip

    rows = [
        {"iteration": 0, "latency": [rec(1, 10.0, 400, 1.0, 400), rec(8, 60.0, 3200, 1.0, 3200)]},
        {"iteration": 1},  # not timed: skipped
        {"iteration": 2, "latency": [rec(1, 5.0, 100, 2.0, 400), rec(8, 20.0, 800, 3.0, 3200),
                                     rec(1, 1.0, 100, 1.5, 400, "cuda:0")]},
        {"iteration": 3, "latency": [{k: v for k, v in rec(1, 4.0, 100, 1, 1).items()
                                      if "speedup" not in k and "original" not in k}]},
    ]  # fmt: skip
    table = latency_table(rows)
    assert [(r["iteration"], r["batch_size"]) for r in table.rows] == [
        (0, 1),
        (0, 8),
        (2, 1),
        (2, 8),
        (2, 1),
        (3, 1),
    ]
    assert table.column("speedup")[:2] == ["reference", "reference"]  # the original
    assert table.column("speedup")[2:] == pytest.approx([2.0, 3.0, 1.5, None])
    assert table.column("speedup_range")[2] == "1.90–2.10"
    assert table.column("macs_ratio") == pytest.approx([1.0, 1.0, 4.0, 4.0, 4.0, None])
    assert table.column("efficiency") == pytest.approx([None, None, 0.5, 0.75, 0.375, None])
    assert table.column("original_ms")[3] == 60.0
    assert table.column("flags") == ["–", "–", "–", "–", "noisy model", "–"]
    assert table.column("calls") == [10] * 6
    assert latency_table([{"iteration": 0}]) is None


def _onnx(ms: float, matches: bool = True) -> OnnxReport:
    return OnnxReport("m.onnx", "torchscript", 2_000_000, 17, True, 1e-7, matches, ms, 20, 1)


def test_deployment_table_flags_what_pruning_broke():
    checks = [
        DeployCheck("original", True, True, _onnx(4.0)),
        DeployCheck("final", False, True, _onnx(1.0, matches=False)),
    ]
    table = deployment_table(checks)
    assert table.column("ort_latency_ms") == [4.0, 1.0] and "ort_speedup" not in table.keys
    assert table.column("torch_export") == ["yes", "NO"]
    assert table.column("onnx_mb") == [2.0, 2.0]
    assert table.notes == [
        "final: torch.export fails although original passes",
        "final: ONNX parity fails although original passes",
    ]
    failed = deployment_table([DeployCheck("x", None, None, None, "boom")])
    assert (
        failed.column("onnx_exporter") == ["failed"]
        and "ONNX export failed: boom" in failed.notes[0]
    )
    assert "| final | NO | yes | torchscript |" in to_markdown(table)


def test_prune_cli_latency_flags_fill_the_config(tmp_path):
    from filterprune.cli.main import build_parser
    from filterprune.cli.prune import build_config

    config_file = tmp_path / "prune.json"
    config_file.write_text(PruneConfig(latency={"repeats": 7, "threads": 4}).to_json())
    argv = ["prune", "--load", str(tmp_path), "--config", str(config_file),
            "--latency-batch-sizes", "1,8", "--latency-threads", "1",
            "--latency-input-size", "64x64"]  # fmt: skip
    config = build_config(build_parser().parse_args(argv), task=None)
    assert config.measure_latency  # any latency flag turns timing on
    assert config.latency == LatencyConfig(
        batch_sizes=(1, 8), input_size=(64, 64), threads=1, repeats=7
    )
    plain = build_config(build_parser().parse_args(["prune", "--load", str(tmp_path)]), task=None)
    assert not plain.measure_latency and plain.latency == LatencyConfig()
