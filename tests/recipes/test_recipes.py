"""The workflows from Python: the same recipes the subcommands call, with the same files."""

from __future__ import annotations

import json

import pytest
import torch

from filterprune.config.recipe import resolve_task
from filterprune.loop import PruneConfig, RunDir, load
from filterprune.recipes import (
    Optimizer,
    RecipeError,
    evaluate_saved,
    load_data,
    model_factory,
    prune_saved,
    train_baseline,
)

DATA = {"image_size": 32, "data_args": {"num_cars": 6, "views_per_car": 2}, "batch_size": 4}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipes") / "base"
    data = load_data("segment", **DATA)
    done = train_baseline(
        "unet",
        data,
        out=out,
        model_args={"base": 4},
        steps=3,
        optimizer=Optimizer(name="adam", lr=5e-3),
        progress=False,
    )
    assert done.steps == 3 and set(done.metrics) >= {"dice"}
    return out


def test_train_stores_the_training_recipe(baseline):
    info = json.loads((baseline / "model.json").read_text())
    assert info["training"] == {
        "name": "adam",
        "lr": 5e-3,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "schedule": "cosine",
    }
    assert info["model_args"] == {"base": 4, "num_classes": 1}


def test_prune_then_evaluate_from_python(baseline, tmp_path):
    config = PruneConfig(criterion="l1", amount=0.2, finetune=1, max_iterations=1)
    result = prune_saved(baseline, run_dir=tmp_path / "run", config=config, progress=False)
    run = tmp_path / "run"
    assert RunDir(run).read_state()["finished"]
    shown = repr(result)  # one line, not the whole plan
    assert "\n" not in shown and len(shown) < 400 and "removed_outputs" not in shown
    assert shown.startswith("RunResult(stopped='max_iterations', best_iteration=1, params ")
    assert "dice " in shown and f"run_dir='{run}'" in shown
    info = json.loads((run / "model.json").read_text())
    # "training" stays the baseline's (a later prune of the run inherits it); the run
    # finetuned with its optimizer at a tenth of its rate and ended at its full rate
    assert info["training"]["name"] == "adam" and info["training"]["lr"] == 5e-3
    tuned = info["finetuning"]
    assert (tuned["name"], tuned["lr"], tuned["schedule"]) == ("adam", 5e-4, "constant")
    assert tuned["final_lr"] == 5e-3
    lines = (run / "channels.txt").read_text().split()
    assert len(lines) == 22 and sum(map(int, lines)) < 22 * 4 * 8  # narrower than the original
    out = evaluate_saved(run)
    assert out["params"] == sum(p.numel() for p in result.model.parameters())
    assert 0.0 <= out["metrics"]["dice"] <= 1.0
    # the run folder loads back with nothing but its model.json
    rebuilt = load(run, model_factory(info["model"], info["model_args"]))
    x = torch.randn(1, 3, 32, 32)
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), result.model(x))


def test_a_segmentation_run_ranks_without_the_cost_term_unless_one_is_set(baseline, tmp_path):
    # the recipe for dense outputs (docs/benchmarks.md, "Fashion-MNIST canvases"); a cost term
    # given is kept, and a classification run keeps the recipe's
    def flops_reg(run, **settings):
        config = PruneConfig(criterion="l1", amount=0.2, finetune=1, max_iterations=1, **settings)
        prune_saved(baseline, run_dir=tmp_path / run, config=config, progress=False)
        return json.loads((tmp_path / run / "config.json").read_text())["ranking"]["flops_reg"]

    assert flops_reg("default") == 0.0
    assert flops_reg("asked", flops_reg=0.1) == 0.1
    assert resolve_task(PruneConfig().ranking, "classify").flops_reg == 0.1
    assert resolve_task(PruneConfig().ranking, "detect").flops_reg == 0.0


def test_prune_refuses_a_folder_that_holds_a_run(baseline, tmp_path):
    config = PruneConfig(criterion="l1", amount=0.2, finetune=1, max_iterations=1)
    prune_saved(baseline, run_dir=tmp_path / "run", config=config, progress=False)
    with pytest.raises(RecipeError, match="already holds a run; add --resume"):
        prune_saved(baseline, run_dir=tmp_path / "run", config=config, progress=False)


def test_a_checkpoint_without_model_json_needs_the_model(baseline, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes((baseline / "weights.safetensors").read_bytes())
    with pytest.raises(RecipeError, match="--model is required"):
        evaluate_saved(weights)
    out = evaluate_saved(
        weights,
        model="unet",
        model_args={"base": 4},
        task="segment",
        data=load_data("segment", **DATA),
    )
    assert out["macs"] > 0


def test_prune_finetunes_at_a_tenth_of_the_training_rate():
    trained = Optimizer(name="adam", lr=1e-3, weight_decay=5e-4)
    tuned = trained.for_finetuning()
    assert (tuned.name, tuned.lr, tuned.weight_decay) == ("adam", 1e-4, 5e-4)
    assert tuned.schedule == "constant"
    # a model.json written before schedules existed was trained at a constant rate
    old = Optimizer.from_dict({"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0})
    assert old.schedule == "constant" and Optimizer().schedule == "cosine"
    with pytest.raises(RecipeError, match=r"model.json: training settings .*--schedule must be"):
        Optimizer.from_dict({"name": "sgd", "schedule": "linear"})
    with pytest.raises(
        RecipeError, match=r"--lr \(lr\): need a finite number in \(0, 1e\+30\], got 0"
    ):
        Optimizer(lr=0)


def test_a_model_faster_in_one_runtime_and_slower_in_the_other_is_named():
    from filterprune.recipes.eval import runtimes_disagree

    def rec(runtime, b, low, mid, high):
        return {"runtime": runtime, "batch_size": b, "speedup_low": low, "speedup": mid,
                "speedup_high": high}  # fmt: skip

    eager = [rec("eager", 1, 1.1, 1.2, 1.3), rec("eager", 16, 1.1, 1.2, 1.3)]
    onnx = [rec("onnxruntime", 1, 0.8, 0.9, 0.95), rec("onnxruntime", 16, 0.9, 1.05, 1.2)]
    (entry,) = runtimes_disagree(eager, onnx)  # batch 16: onnxruntime's rounds straddle 1
    assert entry["batch_size"] == 1
    assert (entry["faster_in"], entry["slower_in"]) == ("eager PyTorch", "onnxruntime")
    assert "1.20x in eager PyTorch" in entry["text"] and "0.90x in onnxruntime" in entry["text"]
    # the other way round, and no disagreement when both gain
    (flipped,) = runtimes_disagree(onnx[:1], eager[:1])
    assert flipped["faster_in"] == "eager PyTorch"
    assert runtimes_disagree(eager, eager) == []
