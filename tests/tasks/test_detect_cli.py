"""``--task detect`` on ``--data fashion-mnist-det`` through the CLI: train, prune, evaluate on t10k."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from filterprune.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_idx import write_items  # noqa: E402

pytest.importorskip("faster_coco_eval")


def test_train_prune_and_evaluate_a_detector_from_the_command_line(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(
        "FILTERPRUNE_FASHION_MNIST", str(write_items(tmp_path / "fm", disjoint=False))
    )
    monkeypatch.setenv("FILTERPRUNE_PROGRESS", "0")
    data = [
        "--task", "detect", "--data", "fashion-mnist-det", "--image-size", "32",
        "--data-arg", "train_canvases=8", "--data-arg", "val_canvases=4",
        "--data-arg", "test_canvases=4", "--batch-size", "4",
    ]  # fmt: skip
    base = tmp_path / "base"
    assert main(["train", "--model", "yolo_tiny", "--model-arg", "base=4", *data, "--steps", "2",
                 "--out", str(base)]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert "map=" in out and "mAP@0.5 0.000, near zero" in err  # the weak-baseline check
    model_json = json.loads((base / "model.json").read_text())
    assert model_json["model_args"]["num_classes"] == 30  # the classes the item files hold
    run = tmp_path / "run"
    code = main(["prune", "--load", str(base), "--target", "macs=-20%", "--max-metric-drop", "1",
                 "--finetune-steps", "1", "--run-dir", str(run)])  # fmt: skip
    assert code == 0
    table = (run / "report" / "iterations.md").read_text()
    assert "| map | map50 | map75 | loss |" in table
    assert " %" in table.split("\n")[2]  # mAP shown in percent
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("map" in json.dumps(row) for row in rows)
    capsys.readouterr()
    assert main(["eval", "--load", str(run), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "map" in out
