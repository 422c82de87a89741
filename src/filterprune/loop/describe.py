"""What a run folder says about its model, so that the command line can take over a Python run.

A model built by :func:`filterprune.models.create_model` remembers its name and arguments; a run
of such a model writes ``model.json`` (model, model_args, input_shape), which ``filterprune eval``,
``report --onnx`` and ``load`` read. Any other model cannot be rebuilt from a file without running
code, so the run writes ``MODEL.txt`` instead: which class it was and which factory to pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..plan import Plan
from ..store.files import atomic_write_json, atomic_write_text

__all__ = ["MODEL_JSON", "MODEL_NOTE", "describe_model", "write_model_description"]

MODEL_JSON = "model.json"
MODEL_NOTE = "MODEL.txt"
SPEC_ATTRIBUTE = "filterprune_spec"  # set by create_model: {"model": name, "model_args": {...}}


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def describe_model(model: nn.Module, base_plan: Plan | None = None) -> dict[str, Any] | None:
    """``{"model", "model_args"}`` when ``create_model`` built ``model`` and it still fits.

    The name is trusted only if a model built from it (on the meta device, so nothing is
    allocated), narrowed by ``base_plan``, has exactly ``model``'s tensors: a model whose head
    was replaced after ``create_model`` gets no model.json.
    """
    spec = getattr(model, SPEC_ATTRIBUTE, None)
    if not isinstance(spec, dict) or "model" not in spec:
        return None
    from ..models import create_model
    from ..surgery import apply_plan

    try:
        with torch.device("meta"):
            rebuilt = create_model(spec["model"], **spec.get("model_args", {}))
        if base_plan is not None and base_plan.num_removed:
            apply_plan(rebuilt, base_plan)
    except Exception:  # any failure: say nothing rather than something wrong
        return None
    if _shapes(rebuilt) != _shapes(model):
        return None
    return {"model": spec["model"], "model_args": dict(spec.get("model_args", {}))}


def write_model_description(
    run_dir: Path, model: nn.Module, example_inputs: Any, base_plan: Plan | None = None
) -> Path | None:
    """Write ``run_dir/model.json`` (or ``MODEL.txt``) unless a model.json is already there."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_JSON).is_file():
        return None
    info = describe_model(model, base_plan)
    if info is not None:
        if isinstance(example_inputs, torch.Tensor):
            info["input_shape"] = list(example_inputs.shape)
        return atomic_write_json(run_dir / MODEL_JSON, info)
    cls = type(model)
    where = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__module__.split(".")[0] == "torch":  # nn.Sequential & co: built in the user's code
        factory, build = "MYMODULE:FUNCTION", "FUNCTION()"
        how = (
            f"It is a plain torch {cls.__qualname__} built in your code, so write a function "
            "that builds it (in MYMODULE.py, importable from where you run filterprune:\n"
            f"  def FUNCTION():\n      return nn.{cls.__qualname__}(...)  # the original layers\n"
            "), and pass it as MYMODULE:FUNCTION:\n\n"
        )
    else:
        factory, build = f"{cls.__module__}:FUNCTION", f"{cls.__qualname__}(...)"
        how = (
            f"FUNCTION is a function of {cls.__module__} (or of any module you can import) "
            f"that returns a new {cls.__qualname__}:\n\n"
        )
    return atomic_write_text(
        run_dir / MODEL_NOTE,
        f"This run pruned a {where} that filterprune cannot rebuild from a file.\n"
        "To evaluate, report or load it, pass the function that builds the ORIGINAL model.\n"
        + how
        + f"  filterprune eval --load {run_dir} --model {factory} --trust-model-code --task TASK\n"
        f"  filterprune.load({str(run_dir)!r}, lambda: {build})\n\n"
        "A model built with filterprune.models.create_model gets a model.json instead.\n",
    )
