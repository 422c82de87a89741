"""What the bare ``filterprune prune --load BASE --target ...`` runs: the default recipe."""

from __future__ import annotations

import json

import pytest

from filterprune.cli import main
from filterprune.cli.main import build_parser
from filterprune.cli.prune import build_config
from filterprune.loop import RECIPE, ConfigError, PruneConfig
from filterprune.recipes.prune import with_final_pass
from filterprune.tasks import get_task


def _config(tmp_path, *flags: str):
    args = build_parser().parse_args(["prune", "--load", str(tmp_path), *flags])
    return build_config(args, get_task("classify"))


def test_the_bare_command_runs_the_recipe_and_finetunes(tmp_path):
    config = _config(tmp_path, "--target", "macs=-75%")
    assert (config.criterion, config.scope, config.flops_reg) == ("taylor", "global", 0.1)
    assert config.layer_types == ("conv",)
    assert (config.budget().amount, config.budget(final=True).amount) == (100, 300)
    # ... and the recipe makes the final finetuning one pass over the training data
    final = with_final_pass(config, range(57)).budget(final=True)
    assert (final.amount, final.unit, final.final) == (57, "steps", True)
    assert config.max_iterations is None  # the target ends the run
    assert (config.metric, config.collapse_ratio, config.max_layer_fraction) == (
        "accuracy",
        0.5,
        None,  # 2.5 times the iteration's share: a quarter of a layer at 10 %
    )
    assert config.removal.layer_fraction(config.amount) == 0.25
    assert {k: getattr(config, k) for k in RECIPE} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in RECIPE.items()
    }


def test_flags_and_config_files_override_the_recipe(tmp_path):
    config = _config(
        tmp_path, "--criterion", "l1", "--finetune-steps", "5", "--allow-collapse",
        "--layer-type", "Linear", "--max-iterations", "3", "--target", "macs=-50%",
    )  # fmt: skip
    assert (config.criterion, config.budget().amount, config.budget(final=True).amount) == (
        "l1",
        5,
        0,
    )
    assert (config.collapse_ratio, config.layer_types, config.max_iterations) == (
        None,
        ("Linear",),
        3,
    )
    assert _config(tmp_path, "--include", "features.*").layer_types == ()
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"criterion": "kmeans", "flops_reg": 0.0}))
    config = _config(tmp_path, "--config", str(file))
    assert (config.criterion, config.flops_reg, config.scope) == ("kmeans", 0.0, "global")


def test_a_nested_config_file_sets_what_it_names_and_the_recipe_the_rest(tmp_path):
    file = tmp_path / "c.json"
    nested = {"ranking": {"criterion": "l1"}, "removal": {"amount": 4}, "seed": 2}
    file.write_text(json.dumps(nested))
    config = _config(tmp_path, "--config", str(file), "--finetune-steps", "7")
    assert (config.criterion, config.amount, config.seed) == ("l1", 4, 2)
    assert (config.flops_reg, config.scope, config.layer_types) == (0.1, "global", ("conv",))
    assert config.finetuning.per_iteration == 7
    file.write_text(json.dumps({"removal": {"amount": 1.5}}))
    with pytest.raises(ConfigError, match=r"c.json: PruneConfig.amount: need a fraction"):
        _config(tmp_path, "--config", str(file))
    file.write_text(json.dumps({"removal": {"amout": 0.2}}))
    with pytest.raises(ConfigError, match=r"PruneConfig.removal: unknown keys \['amout'\]"):
        _config(tmp_path, "--config", str(file))


def test_per_group_scope_drops_the_recipes_cost_term(tmp_path):
    config = _config(tmp_path, "--scope", "per_group")
    assert (config.scope, config.flops_reg) == ("per_group", 0.0)


def test_flops_reg_with_per_group_scope_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "weights.safetensors").write_bytes(b"")
    code = main(
        ["prune", "--load", str(tmp_path), "--task", "classify", "--model", "vgg16_bn",
         "--scope", "per_group", "--flops-reg", "1e-3", "--limit", "8"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "--flops-reg" not in err or "--scope" in err
    assert "does nothing" in err and "'global'" in err


@pytest.mark.parametrize("ratio", ["0", "1.5"])
def test_collapse_ratio_flag_is_checked(tmp_path, ratio):
    with pytest.raises(Exception, match="collapse_ratio"):
        _config(tmp_path, "--collapse-ratio", ratio)


def test_the_final_pass_only_fills_a_budget_nobody_set(tmp_path):
    loader = range(57)
    for flags, final in [
        (["--finetune-steps", "5"], 0),  # a per-iteration budget without a final one: none
        (["--final-finetune", "9"], 9),
        (["--finetune-epochs", "1"], 0),
    ]:
        config = with_final_pass(_config(tmp_path, *flags), loader)
        assert config.budget(final=True).amount == final, flags
    epochs = with_final_pass(PruneConfig(finetune_unit="epochs"), loader)
    assert epochs.budget(final=True).amount == 1  # the loop's default in epochs: one already
    unsized = (x for x in [1])  # no length: the loop's default stays
    assert with_final_pass(_config(tmp_path), unsized).budget(final=True).amount == 300
