"""The command line, driven in-process through ``main([...])``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from filterprune.cli import main
from filterprune.cli.main import COMMANDS
from filterprune.loop import RunDir

DATA = [
    "--data-arg",
    "num_cars=6",
    "--data-arg",
    "views_per_car=2",
    "--image-size",
    "32",
    "--batch-size",
    "4",
]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("filterprune: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----- help ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [c.NAME for c in COMMANDS])
def test_every_subcommand_help_has_examples(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    assert "examples:" in out and f"filterprune {command}" in out.split("examples:")[1]
    assert "--quiet" in out and "--debug" in out


def test_top_level_help_lists_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command.NAME in out
    assert run_cli(capsys, "--version")[0] == 0
    assert run_cli(capsys)[0] == 2  # no command: help, non-zero


# ----- errors ----------------------------------------------------------------------------------
def test_unknown_command(capsys):
    code, _, err = run_cli(capsys, "shrink")
    assert code == 2
    assert_one_line_error(code, err, "invalid choice: 'shrink'")


def test_missing_required_option_names_it(capsys):
    code, _, err = run_cli(capsys, "prune", "--task", "segment")
    assert code == 2
    assert_one_line_error(code, err, "prune: ", "--load", "filterprune prune --help")


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prune", "--load", tmp_path / "nope")
    assert_one_line_error(code, err, "--load", "does not exist")


def test_bad_amount(capsys):
    code, _, err = run_cli(capsys, "prune", "--load", ".", "--amount", "abc")
    assert_one_line_error(code, err, "--amount", "'abc'")


def test_unknown_model(capsys):
    code, _, err = run_cli(capsys, "inspect", "--model", "alexnet2")
    assert_one_line_error(code, err, "--model alexnet2", "unknown model", "vgg16_bn")


def test_a_mistyped_model_is_named_before_training_starts(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--task", "classify", "--model", "vgg16bn",
                           "--steps", "1", "--out", tmp_path / "out")  # fmt: skip
    assert_one_line_error(code, err, "--model vgg16bn", "did you mean 'vgg16_bn'?")
    assert "training" not in err  # nothing claims to have started


def test_model_needed_without_model_json(capsys, tmp_path):
    # a folder filterprune did not write: said first, before any flag it would need
    code, _, err = run_cli(capsys, "eval", "--load", tmp_path, "--task", "classify")
    assert_one_line_error(code, err, "is neither a run folder", "pass a folder written by")
    (tmp_path / "weights.safetensors").write_bytes(b"")  # a checkpoint without its model.json
    code, _, err = run_cli(capsys, "eval", "--load", tmp_path, "--task", "classify")
    assert_one_line_error(code, err, "--model is required")


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(Exception, match="--model is required"):
        main(["eval", "--load", str(tmp_path), "--task", "classify", "--debug"])


# ----- end to end ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "base"
    code = main(
        [
            "train",
            "--task",
            "segment",
            "--model",
            "unet",
            "--model-arg",
            "base=4",
            *DATA,
            "--steps",
            "4",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def pruned(baseline) -> Path:
    run_dir = baseline.parent / "run"
    code = main(
        [
            "prune",
            "--load",
            str(baseline),
            *DATA,
            "--criterion",
            "taylor",
            "--ranking-batches",
            "2",
            "--amount",
            "0.25",
            "--finetune-steps",
            "2",
            "--max-iterations",
            "2",
            "--allow-collapse",  # a 4-step baseline: its Dice is noise
            "--run-dir",
            str(run_dir),
            "-q",
        ]
    )
    assert code == 0
    return run_dir


def test_train_writes_a_loadable_folder(baseline):
    names = sorted(p.name for p in baseline.iterdir())
    assert names == [
        "manifest.json",
        "metrics.json",
        "model.json",
        "plan.json",
        "weights.safetensors",
    ]
    info = json.loads((baseline / "model.json").read_text())
    data = {
        "data": "builtin",
        "image_size": 32,
        "val_fraction": 0.2,
        "seed": 0,
        "data_args": {"num_cars": 6, "views_per_car": 2},
    }
    assert info == {
        "model": "unet",
        "model_args": {"base": 4, "num_classes": 1},
        "task": "segment",
        "input_shape": [1, 3, 32, 32],
        "data": data,
        "training": {
            "name": "sgd",
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 0.0,
            "schedule": "cosine",
        },
    }


def test_prune_runs_two_iterations(pruned, capsys):
    state = RunDir(pruned).read_state()
    assert state["finished"] and state["stop_reason"] == "max_iterations"
    rows = RunDir(pruned).read_rows()
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[2]["removed_total"] > rows[1]["removed_total"] > 0
    assert [r["ranking_batches"] for r in rows] == [0, 2, 2]
    assert len((pruned / "channels.txt").read_text().split()) == 22


def test_eval_of_the_run_matches_its_last_row(pruned, capsys):
    # model, task and data settings all come from the run folder's model.json
    code, out, _ = run_cli(capsys, "eval", "--load", pruned, "--json")
    assert code == 0
    result = json.loads(out)
    last = RunDir(pruned).read_rows()[-1]
    assert result["metrics"] == pytest.approx(last["metrics"], rel=1e-6)
    assert (result["params"], result["macs"]) == (last["params"], last["macs"])


def test_eval_compare_is_an_ab_of_two_checkpoints(baseline, pruned):
    # through the installed command, as a user runs it
    command = [str(Path(sys.executable).parent / "filterprune"), "eval", "--compare",
               str(baseline), "--load", str(pruned), "--latency", "--batch-sizes", "1", "2",
               "--threads", "1", "--rounds", "3", "--repeats", "2"]  # fmt: skip
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    rows = RunDir(pruned).read_rows()
    assert (result["original"]["params"], result["original"]["macs"]) == (
        rows[0]["params"],
        rows[0]["macs"],
    )
    assert (result["model"]["params"], result["model"]["macs"]) == (
        rows[-1]["params"],
        rows[-1]["macs"],
    )
    assert result["model"]["metrics"] == pytest.approx(rows[-1]["metrics"], rel=1e-6)
    assert result["original"]["size_mb"] > result["model"]["size_mb"] > 0
    assert [r["batch_size"] for r in result["latency"]] == [1, 2]
    for record in result["latency"]:
        assert record["rounds"] == 3 and record["threads"] == 1
        assert record["speedup_low"] <= record["speedup"] <= record["speedup_high"]
        assert record["original_median_ms"] > 0 and record["median_ms"] > 0
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "A/B comparison" in text and "| Speed-up | Round range |" in text
    assert f"original: {baseline}" in text and f"model: {pruned}" in text
    assert "| Latency |" not in text  # plain Markdown tables, no caption rows


def test_eval_compare_times_onnxruntime_side_by_side_too(baseline, pruned, capsys):
    pytest.importorskip("onnxruntime")
    code, out, _ = run_cli(capsys, "eval", "--compare", baseline, "--load", pruned,
                           "--runtime", "eager", "onnxruntime", "--batch-sizes", "1", "2",
                           "--rounds", "3", "--repeats", "2", "--json")  # fmt: skip
    assert code == 0
    result = json.loads(out)  # --runtime implies --latency
    for key, runtime in (("latency", "eager"), ("onnxruntime_latency", "onnxruntime")):
        assert [r["batch_size"] for r in result[key]] == [1, 2]
        for record in result[key]:
            assert record["runtime"] == runtime and record["rounds"] == 3
            assert record["threads"] == 1 and len(record["round_speedups"]) == 3
            assert record["speedup_low"] <= record["speedup"] <= record["speedup_high"]
            assert record["original_median_ms"] > 0 and record["median_ms"] > 0
    assert isinstance(result["runtimes_disagree"], list)  # said in the text output too
    code, text, _ = run_cli(capsys, "eval", "--compare", baseline, "--load", pruned,
                            "--runtime", "eager", "onnxruntime", "--rounds", "3", "--repeats", "2")  # fmt: skip
    assert code == 0 and ("agree: at no batch size" in text or "helps one runtime" in text)
    code, _, err = run_cli(capsys, "eval", "--load", pruned, "--runtime", "onnxruntime")
    assert_one_line_error(code, err, "--runtime", "--compare ORIGINAL")


def test_resume_extends_a_finished_run(pruned, capsys, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(pruned, run_dir)
    code, out, _ = run_cli(
        capsys,
        "prune",
        "--load",
        pruned.parent / "base",
        *DATA,
        "--criterion",
        "taylor",
        "--ranking-batches",
        "2",
        "--amount",
        "0.25",
        "--finetune-steps",
        "2",
        "--max-iterations",
        "3",
        "--allow-collapse",
        "--run-dir",
        run_dir,
        "--resume",
        "-q",
    )
    assert code == 0
    assert [r["iteration"] for r in RunDir(run_dir).read_rows()] == [0, 1, 2, 3]
    code, _, err = run_cli(
        capsys, "prune", "--load", pruned.parent / "base", *DATA, "--run-dir", run_dir, "-q"
    )
    assert_one_line_error(code, err, "already holds a run", "--resume")


def test_resume_of_a_folder_without_a_run_says_it_starts_a_new_one(pruned, capsys, tmp_path):
    # a mistyped --run-dir with --resume: the run starts, and says so before any work
    code, _, err = run_cli(capsys, "prune", "--load", pruned.parent / "base", *DATA,
                           "--amount", "0.25", "--finetune-steps", "1", "--final-finetune", "0",
                           "--max-iterations", "1", "--allow-collapse",
                           "--run-dir", tmp_path / "typo", "--resume", "-q")  # fmt: skip
    assert code == 0
    assert f"--resume: --run-dir {tmp_path / 'typo'} holds no run to continue" in err
    assert "check the path" in err and RunDir(tmp_path / "typo").exists()


def test_report_writes_tables_and_plots(pruned, capsys, tmp_path):
    code, out, _ = run_cli(capsys, "report", pruned, "--out", tmp_path / "rep", "-q")
    assert code == 0
    assert "| Iteration |" in out
    assert "| Producing layer(s) |" in out
    written = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {
        "iterations.md",
        "iterations.csv",
        "layers.json",
        "summary.md",
        "channels.png",
        "dice_vs_macs.png",
    } <= written


def test_inspect_a_pruned_run(pruned, capsys):
    code, out, _ = run_cli(capsys, "inspect", "--load", pruned)
    assert code == 0
    assert out.startswith("UNet: 23 channel groups, 22 prunable, 1 frozen")


def test_channel_txt_rebuilds_a_pruned_unet(pruned, capsys, tmp_path):
    weights = pruned / "iter_002" / "weights.safetensors"
    args = [
        "eval",
        "--load",
        weights,
        "--model",
        "unet",
        "--model-arg",
        "base=4",
        "--task",
        "segment",
        *DATA,
        "--json",
    ]
    # the seed's situation: bare pruned weights + a channel list describing the architecture
    code, _, err = run_cli(
        capsys,
        "prune",
        "--load",
        weights,
        "--model",
        "unet",
        "--model-arg",
        "base=4",
        "--task",
        "segment",
        *DATA,
        "--channel-txt",
        pruned / "channels.txt",
        "--max-iterations",
        "1",
        "--finetune-steps",
        "1",
        "--allow-collapse",  # a 4-step baseline: its Dice is noise
        "--run-dir",
        tmp_path / "run",
        "-q",
    )
    assert code == 0, err
    assert [r["iteration"] for r in RunDir(tmp_path / "run").read_rows()] == [0, 1]
    assert run_cli(capsys, *args)[0] == 0  # a bare weights file uses the plan.json beside it

    bad = tmp_path / "bad.txt"
    bad.write_text("4\n4\n")
    code, _, err = run_cli(
        capsys,
        "prune",
        "--load",
        weights,
        "--model",
        "unet",
        "--model-arg",
        "base=4",
        "--task",
        "segment",
        *DATA,
        "--channel-txt",
        bad,
        "--run-dir",
        tmp_path / "run2",
        "-q",
    )
    assert_one_line_error(code, err, "bad.txt", "has 2 channel counts", "22 conv layers")


def test_bad_config_value_is_one_line(baseline, capsys, tmp_path):
    code, _, err = run_cli(
        capsys,
        "prune",
        "--load",
        baseline,
        *DATA,
        "--amount",
        "1.5",
        "--run-dir",
        tmp_path / "r",
        "-q",
    )
    assert_one_line_error(code, err, "PruneConfig.amount", "1.5")
    config = tmp_path / "c.json"
    config.write_text('{"amout": 0.1}')
    code, _, err = run_cli(
        capsys,
        "prune",
        "--load",
        baseline,
        *DATA,
        "--config",
        config,
        "--run-dir",
        tmp_path / "r",
        "-q",
    )
    assert_one_line_error(code, err, "c.json", "unknown config keys ['amout']")


def test_demo_smoke(capsys, tmp_path):
    code, out, _ = run_cli(
        capsys,
        "demo",
        "--size",
        "smoke",
        "--run-dir",
        tmp_path / "demo",
        "--cache-dir",
        tmp_path / "cache",
        "-q",
    )
    assert code == 0
    assert "| Iteration |" in out and "| Producing layer(s) |" in out and "stopped:" in out
    assert RunDir(tmp_path / "demo").read_state()["finished"]
    assert (tmp_path / "demo" / "report" / "summary.md").exists()
    assert list((tmp_path / "cache").glob("*.safetensors"))  # the baseline is cached
    widths = (tmp_path / "demo" / "channels.txt").read_text().split()  # as every prune run
    assert widths and all(w.isdigit() and int(w) > 0 for w in widths)


def test_cost_and_recovery_flags_reach_the_config(tmp_path):
    from filterprune.cli._args import UsageError
    from filterprune.cli.main import build_parser
    from filterprune.cli.prune import build_config
    from filterprune.tasks import get_task

    args = build_parser().parse_args(
        ["prune", "--load", str(tmp_path), "--flops-reg", "0.5", "--cost", "latency",
         "--max-metric-drop", "0.01", "--recovery", "2"]
    )  # fmt: skip
    config = build_config(args, get_task("classify"))
    assert (config.flops_reg, config.cost) == (0.5, "latency")
    assert (config.metric, config.max_metric_drop, config.recovery) == ("accuracy", 0.01, 2)
    with pytest.raises(UsageError, match="--cost: invalid choice: 'time'"):
        build_parser().parse_args(["prune", "--load", str(tmp_path), "--cost", "time"])


def test_eval_compare_on_a_busy_machine_adds_the_clean_block_floor(baseline, pruned, capsys,
                                                                   monkeypatch):  # fmt: skip
    import filterprune.measure as measure

    timed = measure.compare_latency

    def busy(*args, **kwargs):  # the real timing, flagged as a machine others held would be
        return [dataclasses.replace(c, flags=("preempted (on a core 30% of the time)",))
                for c in timed(*args, **kwargs)]  # fmt: skip

    monkeypatch.setattr(measure, "compare_latency", busy)
    code, out, _ = run_cli(capsys, "eval", "--compare", baseline, "--load", pruned, "--latency",
                           "--batch-sizes", "1", "--rounds", "3", "--repeats", "2", "--json")  # fmt: skip
    assert code == 0
    (record,) = json.loads(out)["latency"]
    assert record["floor_speedup"] > 0 and min(record["floor_clean_blocks"]) >= 5
    code, text, _ = run_cli(capsys, "eval", "--compare", baseline, "--load", pruned, "--latency",
                            "--batch-sizes", "1", "--rounds", "3", "--repeats", "2")  # fmt: skip
    assert "note: batch 1: the machine was busy (preempted" in text
    assert "fastest block that no other process interrupted gives" in text
    monkeypatch.setattr(measure, "compare_latency", timed)  # an unflagged timing: no floor
    code, out, _ = run_cli(capsys, "eval", "--compare", baseline, "--load", pruned, "--latency",
                           "--batch-sizes", "1", "--rounds", "3", "--repeats", "2", "--json")  # fmt: skip
    (record,) = json.loads(out)["latency"]
    assert "floor_speedup" not in record or record["flags"]
