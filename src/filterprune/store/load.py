"""Save and load pruned models without pickle: the original architecture + a plan + safetensors.

A pruned model is rebuilt by building the original architecture (``model_factory()``), applying
the saved composed plan with :func:`filterprune.apply_plan` and loading the weights strictly.
The plan can also come from a plain width spec (see :mod:`filterprune.store.widths`).
Weights are checked on load: a missing, extra or mis-shaped tensor, or one holding NaN/inf, is
an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..plan import Plan, PlanError
from ..surgery import apply_plan
from .checkpoint import PLAN, WEIGHTS, read_plan, write_checkpoint_dir
from .rundir import RunDir
from .weights import read_weights, state_dict_bytes

__all__ = ["load", "load_state_dict_strict", "resolve_checkpoint", "save"]


def save(model: nn.Module, plan: Plan | None, path: str | Path) -> Path:
    """Write ``path/weights.safetensors`` and ``path/plan.json`` atomically.

    Args:
        model: The (pruned) model.
        plan: The composed plan that turns the original architecture into ``model``'s
            (``Plan()`` or ``None`` for an unpruned model).
        path: The checkpoint folder (created; an existing one is replaced only if filterprune
            wrote it and it holds nothing else).

    Returns:
        ``path``.
    """
    return write_checkpoint_dir(path, weights=state_dict_bytes(model), plan=plan or Plan())


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """``(weights file, plan file or None)`` of a run folder, checkpoint folder or weights file.

    A run folder resolves to its final checkpoint (see ``state.json``); a ``.safetensors`` file
    uses the ``plan.json`` beside it if there is one.
    """
    path = Path(path)
    if path.is_file():
        plan = path.parent / PLAN
        return path, plan if plan.is_file() else None
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    run = RunDir(path)
    if run.exists():
        path = run.final_checkpoint()
    elif run.started() and not (path / WEIGHTS).is_file():
        first = run.checkpoint(RunDir.iteration_name(0))
        if not (first / WEIGHTS).is_file():
            raise CheckpointError(
                f"run folder {str(path)!r} has no checkpoint yet: the run stopped before "
                "iteration 0 was saved; start it again with the same command (with --resume)"
            )
        path = first  # stopped before its first state.json: the starting model
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(
            f"{str(path)!r} is neither a run folder (no state.json) nor a checkpoint folder "
            f"(no {WEIGHTS}); pass a folder written by filterprune or a .safetensors file"
        )
    plan = path / PLAN
    return weights, plan if plan.is_file() else None


def load_state_dict_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "weights"
) -> None:
    """Copy ``state`` into ``model``; every key must exist with the same shape, and vice versa.

    Raises:
        CheckpointError: Naming the first missing/unexpected key or the layer with both shapes.
    """
    own = model.state_dict()
    state = _adapted(model, state, own)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match {type(model).__name__}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}; build the model the checkpoint was made from "
            "(same --model and model arguments)"
        )
    for key in own:  # model order, so the first mismatching layer is reported
        tensor = state[key]
        if tuple(own[key].shape) != tuple(tensor.shape):
            layer = key.rsplit(".", 1)[0]
            raise CheckpointError(
                f"{source}: layer '{layer}' tensor '{key}' has shape {tuple(tensor.shape)} in the "
                f"checkpoint but {tuple(own[key].shape)} in the model; build the model the "
                "checkpoint was made from (same --model and --model-arg) with the plan that "
                "describes its channels (plan.json, --channel-txt or --spec)"
            )
    model.load_state_dict(dict(state), strict=True)


def load(
    path: str | Path,
    model_factory: Callable[[], nn.Module],
    *,
    plan: Plan | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild a saved (pruned) model.

    Args:
        path: A run folder (its final model), a checkpoint folder (``weights.safetensors`` +
            ``plan.json``) or a ``.safetensors`` file.
        model_factory: Builds the *original* architecture, e.g.
            ``lambda: create_model("unet", base=4)``.
        plan: Use this plan instead of the saved one (e.g. from :func:`plan_from_widths`).
        device: Where to put the model.

    Returns:
        The model in eval mode.
    """
    for attempt in range(5):
        # a run another process is writing may switch state.json and remove the checkpoint it
        # named between our reads: then read the checkpoint the new state.json names
        seen = _state_stamp(path)
        try:
            weights_path, plan_path = resolve_checkpoint(path)
            saved = read_plan(plan_path) if plan is None and plan_path is not None else Plan()
            weights = read_weights(weights_path)
            break
        except (CheckpointError, FileNotFoundError):
            if attempt == 4 or seen is None or _state_stamp(path) == seen:
                raise
    if plan is None:
        plan = saved
    model = model_factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model_factory returned {type(model).__name__}, not an nn.Module")
    try:
        apply_plan(model, plan)
    except PlanError as exc:
        raise CheckpointError(
            f"{plan_path or 'plan'} does not fit the model built by the factory: {exc}"
        ) from None
    load_state_dict_strict(model, weights, source=str(weights_path))
    return model.to(device).eval()


def _state_stamp(path: Path) -> tuple[int, int] | None:
    """Identity of a run folder's ``state.json`` now (``None``: not a run folder)."""
    try:
        st = (Path(path) / "state.json").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _adapted(
    model: nn.Module, state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> Mapping[str, torch.Tensor]:
    """``state`` under the model's key names, when it was saved under other ones.

    A ``module.`` prefix on every key (saved from ``nn.DataParallel`` or
    ``DistributedDataParallel``) is dropped; then a model with an ``adapt_state_dict(state)``
    method (the built-in U-Net: milesial/Pytorch-UNet's names) renames the rest. Keys that still
    do not match are left for the strict check to name.
    """
    if set(state) == set(own):
        return state
    prefix = "module."
    if (
        state
        and all(k.startswith(prefix) for k in state)
        and not any(k.startswith(prefix) for k in own)
    ):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    adapt = getattr(model, "adapt_state_dict", None)
    if callable(adapt) and set(state) != set(own):
        state = adapt(dict(state))
    return state
