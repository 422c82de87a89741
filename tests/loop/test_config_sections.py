"""PruneConfig's sections: built from objects, dicts or flat keywords alike; nested JSON."""

from __future__ import annotations

import json

import pytest

from filterprune import Ranking
from filterprune.config import FLAT, flat_names
from filterprune.loop import (
    DEFAULT_RANKING_BATCHES,
    ConfigError,
    Finetuning,
    PruneConfig,
    Removal,
    Stopping,
    Target,
)


def test_sections_and_flat_keywords_build_the_same_config():
    flat = PruneConfig(criterion="taylor", amount=0.2, finetune=100, targets=("macs=-50%",))
    nested = PruneConfig(
        ranking=Ranking(criterion="taylor"),
        removal=Removal(amount=0.2),
        finetuning=Finetuning(per_iteration=100),
        stopping=Stopping(targets=(Target("macs", reduction=0.5),)),
    )
    assert nested == flat
    assert flat.removal == Removal(amount=0.2) and flat.finetuning.per_iteration == 100
    assert (flat.criterion, flat.amount, flat.finetune) == ("taylor", 0.2, 100)
    for name, (section, key) in FLAT.items():  # every flat name reads its section's field
        assert getattr(flat, name) == getattr(getattr(flat, section), key)
    with pytest.raises(AttributeError, match="amout"):
        _ = flat.amout
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['amout'\]"):
        PruneConfig(amout=0.2)


def test_flat_keywords_override_the_sections_fields():
    config = PruneConfig(removal=Removal(amount=0.2, round_to=4), amount=3)
    assert (config.amount, config.round_to) == (3, 4)
    assert config.replace(finetune=7).finetuning == Finetuning(per_iteration=7)
    assert config.replace(removal=Removal(amount=0.5)).removal.round_to == 1


def test_json_is_nested_and_round_trips_with_sections():
    config = PruneConfig(
        criterion="l2", criterion_options={"seed": 3}, ranking_batches=4, schedule=(0.2, 4),
        include=("features.*",), finetune=2, finetune_unit="epochs", recovery=1,
        targets=("params<=1000",), metric="accuracy", max_metric_drop=0.05,
        measure_latency=True, latency={"batch_sizes": [1, 8]}, seed=3,
    )  # fmt: skip
    data = json.loads(config.to_json())
    assert data["format"] == 2
    assert set(data) == {"format", "ranking", "removal", "finetuning", "stopping",
                         "measure_latency", "latency", "seed", "device"}  # fmt: skip
    assert data["ranking"]["options"] == {"seed": 3} and data["removal"]["schedule"] == [0.2, 4]
    assert data["stopping"]["targets"] == [{"quantity": "params", "reduction": None,
                                            "at_most": 1000}]  # fmt: skip
    assert PruneConfig.from_json(config.to_json()) == config
    assert PruneConfig.from_dict(config.to_flat_dict()) == config  # format 1's flat keys
    mixed = {"ranking": data["ranking"], "amount": 0.3, "format": 1}
    assert PruneConfig.from_dict(mixed).ranking == config.ranking


def test_a_section_dict_with_only_some_keys_takes_the_defaults():
    config = PruneConfig.from_dict({"ranking": {"criterion": "taylor"}, "removal": {"amount": 5}})
    assert config == PruneConfig(criterion="taylor", amount=5)
    assert config.ranking_batches == DEFAULT_RANKING_BATCHES  # None in a section means 10
    assert PruneConfig(ranking=Ranking(criterion="taylor")).ranking.batches == 10


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"removal": {"amount": 1.5}}, "PruneConfig.amount: need a fraction"),
        ({"removal": Removal(), "schedule": (0.1, 2.0)}, r"PruneConfig.schedule\[1\]"),
        ({"ranking": {"options": 3}}, "PruneConfig.criterion_options"),
        ({"ranking": {"batches": -1}}, "PruneConfig.ranking_batches"),
        ({"finetuning": {"unit": "hours"}}, "PruneConfig.finetune_unit"),
        ({"finetuning": {"per_iteration": -2}}, "PruneConfig.finetune:"),
        ({"stopping": {"collapse_ratio": 2}}, "PruneConfig.collapse_ratio"),
        ({"ranking": {"criterio": "l1"}}, r"PruneConfig.ranking: unknown keys \['criterio'\]"),
        ({"removal": 0.2}, "PruneConfig.removal: need a Removal or a dict"),
        ({"ranking": Ranking(criterion=lambda graph, **ctx: {})}, "PruneConfig.criterion"),
        ({"ranking": Ranking(flops_reg=0.1), "scope": "per_group"}, "PruneConfig.scope"),
        ({"seed": -1}, "PruneConfig.seed"),
        ({"measure_latency": "yes"}, "PruneConfig.measure_latency"),
    ],
)
def test_errors_name_the_setting_by_its_flat_name(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        PruneConfig(**kwargs)


def test_a_section_built_alone_names_itself():
    with pytest.raises(ConfigError, match=r"Removal.amount: .*got 1.5"):
        Removal(amount=1.5)
    with pytest.raises(ConfigError, match=r"Stopping.metric_floor: needs `metric`"):
        Stopping(metric_floor=0.5)
    with pytest.raises(ConfigError, match=r"Finetuning.recovery"):
        Finetuning(recovery=-1)


def test_differences_and_flat_names_speak_flat_names():
    config = PruneConfig(amount=0.2)
    assert config.differences(config.replace(amount=0.3, finetune=4)) == ["amount", "finetune"]
    assert flat_names({"ranking": {"criterion": "l1", "batches": 3}, "seed": 1, "amount": 2}) == {
        "criterion", "ranking_batches", "seed", "amount",
    }  # fmt: skip
