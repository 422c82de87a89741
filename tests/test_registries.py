"""The registries by name (criteria, models, tasks) treat duplicates and unknown names alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from torch import nn

import filterprune as fp
from filterprune.criteria.registry import _CRITERIA
from filterprune.models import create_model, register_model
from filterprune.models.registry import _MODELS
from filterprune.tasks import ClassificationTask, get_task, register_task
from filterprune.tasks.task import _TASKS


def _criterion(tag: str) -> Any:
    class Tagged:
        needs_data = False
        name = tag

        def __init__(self, **options: Any) -> None:
            self.tag = tag

        def __call__(self, graph, **context):
            return {}

    return Tagged


def _model(tag: str) -> Callable[..., nn.Module]:
    def build() -> nn.Module:
        module = nn.Identity()
        module.tag = tag
        return module

    return build


def _task(tag: str) -> type:
    return type(f"Task_{tag}", (ClassificationTask,), {"tag": tag})


# (register decorator, build by name -> object with .tag, make a tagged object, registry)
REGISTRIES = {
    "criterion": (fp.register_criterion, lambda n: fp.get_criterion(n), _criterion, _CRITERIA),
    "model": (register_model, lambda n: create_model(n), _model, _MODELS),
    "task": (register_task, lambda n: get_task(n), _task, _TASKS),
}


@pytest.fixture(params=sorted(REGISTRIES))
def registry(request):
    register, build, make, reg = REGISTRIES[request.param]
    saved = dict(reg._items)
    yield register, build, make
    reg._items.clear()
    reg._items.update(saved)


def test_a_taken_name_is_refused_and_names_its_holder(registry):
    register, build, make = registry
    register("dup_for_test")(make("first"))
    with pytest.raises(ValueError, match="'dup_for_test' is already registered by .*override=True"):
        register("dup_for_test")(make("second"))
    assert build("dup_for_test").tag == "first"


def test_override_replaces_and_the_same_object_may_come_again(registry):
    register, build, make = registry
    first = make("first")
    register("dup_for_test")(first)
    register("dup_for_test")(first)  # e.g. a module imported twice
    assert build("dup_for_test").tag == "first"
    register("dup_for_test", override=True)(make("second"))
    assert build("dup_for_test").tag == "second"


def test_an_empty_name_is_refused(registry):
    register, _, make = registry
    with pytest.raises(ValueError, match="non-empty string"):
        register("")(make("x"))


@pytest.mark.parametrize(
    ("build", "error", "known"),
    [
        (lambda: fp.get_criterion("nope"), ValueError, "known criteria: .*taylor"),
        (lambda: create_model("nope"), KeyError, "known models: .*vgg16_bn"),
        (lambda: get_task("nope"), KeyError, "known tasks: classify, detect, segment"),
    ],
)
def test_an_unknown_name_lists_the_known_ones_and_how_to_add_one(build, error, known):
    with pytest.raises(error, match=f"unknown .*'nope'; {known}.*Register your own with"):
        build()


def test_custom_criteria_helpers_take_override():
    saved = dict(_CRITERIA._items)
    try:
        fp.criterion_from_scores("helper_for_test")(lambda module, w: w.abs().sum(1))
        with pytest.raises(ValueError, match="already registered"):
            fp.criterion_from_removals("helper_for_test")(lambda module, w, amount: [0])
        fp.criterion_from_removals("helper_for_test", override=True)(lambda m, w, amount: [0])
        assert type(fp.get_criterion("helper_for_test")).__name__ == "_Removals"
    finally:
        _CRITERIA._items.clear()
        _CRITERIA._items.update(saved)


def test_an_op_rule_under_a_taken_name_is_refused_and_override_replaces_it():
    from filterprune.graph import rules

    holder = rules.RULES.get("add")
    saved = dict(rules.RULES._items)

    def mine(tr, name, func, args, kwargs, out):
        pass

    try:
        with pytest.raises(
            ValueError,
            match=f"op rule name 'add' is already registered by .*{holder.__name__}.*override=True",
        ):
            rules.rule("add")(mine)
        assert rules.RULES.get("add") is holder
        rules.rule("add", override=True)(mine)
        assert rules.RULES.get("add") is mine
        rules.rule("op_for_test")(mine)
        rules.rule("op_for_test")(mine)  # the same rule again is fine
    finally:
        rules.RULES._items.clear()
        rules.RULES._items.update(saved)


def test_a_layer_type_registered_twice_is_refused_naming_its_spec_and_override_replaces_it():
    from filterprune.graph.specs import _REGISTRY, ConvSpec, OpaqueSpec, spec_for

    class Block(nn.Module):
        pass

    try:
        with pytest.raises(
            ValueError,
            match=r"layer type torch\..*Conv2d is already registered by .*ConvSpec.*override=True",
        ):
            fp.register_layer(nn.Conv2d, ConvSpec())
        fp.register_leaf(Block)
        with pytest.raises(
            ValueError, match=r"layer type .*Block is already registered by .*OpaqueSpec"
        ):
            fp.register_leaf(Block, channel_params=["gamma"])
        assert isinstance(spec_for(Block()), OpaqueSpec)
        fp.register_leaf(Block, channel_params=["gamma"], count_attr="n", override=True)
        assert spec_for(Block()).kind == "perchannel"
    finally:
        _REGISTRY.remove(Block)
    assert spec_for(Block()) is None
