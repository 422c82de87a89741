"""Save and load pruned models without pickle: the original architecture + a plan + safetensors.

A pruned model is rebuilt by building the original architecture (``model_factory()``), applying
the saved composed plan with :func:`filterprune.apply_plan` and loading the weights strictly.
Widths can also come from a plain shape spec: a JSON ``{layer: channels}`` or, for the built-in
U-Net, a text file with one output-channel count per conv layer (the seed project's format).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..api import analyze
from ..plan import Plan, PlanError
from ..surgery import apply_plan
from .checkpoint import (
    PLAN,
    WEIGHTS,
    CheckpointError,
    RunDir,
    atomic_write_text,
    read_plan,
    read_weights,
    state_dict_bytes,
    write_checkpoint_dir,
)
from .layers import producing_layers

__all__ = [
    "load",
    "load_state_dict_strict",
    "plan_from_widths",
    "read_channel_txt",
    "read_spec",
    "resolve_checkpoint",
    "save",
    "unet_channel_list",
    "unet_conv_names",
    "unet_from_channels",
    "write_channel_txt",
]


def save(model: nn.Module, plan: Plan | None, path: str | Path) -> Path:
    """Write ``path/weights.safetensors`` and ``path/plan.json`` atomically.

    Args:
        model: The (pruned) model.
        plan: The composed plan that turns the original architecture into ``model``'s
            (``Plan()`` or ``None`` for an unpruned model).
        path: The checkpoint folder (created; replaced if it exists).

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
                f"checkpoint but {tuple(own[key].shape)} in the model; the plan (plan.json or "
                "channel spec) does not describe this checkpoint's architecture"
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
    weights_path, plan_path = resolve_checkpoint(path)
    if plan is None:
        plan = read_plan(plan_path) if plan_path is not None else Plan()
    model = model_factory()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model_factory returned {type(model).__name__}, not an nn.Module")
    try:
        apply_plan(model, plan)
    except PlanError as exc:
        raise CheckpointError(
            f"{plan_path or 'plan'} does not fit the model built by the factory: {exc}"
        ) from None
    load_state_dict_strict(model, read_weights(weights_path), source=str(weights_path))
    return model.to(device).eval()


# ----- widths: plans from a plain shape spec -------------------------------------------------
def _default_example(model: nn.Module) -> torch.Tensor:
    first = next(iter(producing_layers(model).values()), None)
    channels = getattr(first, "in_channels", None)
    if channels is None:
        raise ValueError(f"pass example_inputs: cannot guess the input of {type(model).__name__}")
    return torch.zeros(1, channels, 32, 32)


def plan_from_widths(
    model: nn.Module, widths: Mapping[str, int], example_inputs: Any = None
) -> Plan:
    """The plan that keeps the first ``widths[layer]`` output channels of each named layer.

    Layers are named as their channel group (the first layer producing it, e.g. ``"inc.0"``).
    Used to rebuild an architecture whose weights come from a checkpoint.
    """
    example = _default_example(model) if example_inputs is None else example_inputs
    graph = analyze(model, example, probe=False)
    groups = {g.name: g for g in graph.groups}
    removed: dict[str, list[int]] = {}
    for name, width in widths.items():
        group = groups.get(name)
        if group is None:
            raise ValueError(
                f"channel spec names layer {name!r}, which produces no channel group of "
                f"{type(model).__name__}; layers are: {', '.join(groups)}"
            )
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= group.size:
            raise ValueError(
                f"channel spec: layer {name!r} must keep an int in 1..{group.size} channels, "
                f"got {width!r}"
            )
        if width < group.size:
            if group.frozen:
                raise ValueError(
                    f"channel spec: layer {name!r} cannot be narrowed: {group.reasons[0]}"
                )
            removed[name] = list(range(width, group.size))
    return graph.plan(removed)


def read_spec(path: str | Path) -> Plan | dict[str, int]:
    """Read a JSON spec: a plan (as in ``plan.json``) or widths ``{layer: channels}``.

    The widths may also sit under a ``"widths"`` key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spec file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"spec file {str(path)!r} is not valid JSON ({exc})") from None
    if isinstance(data, dict) and "removed_outputs" in data:
        return Plan.from_dict(data, source=str(path))
    if isinstance(data, dict) and isinstance(data.get("widths"), dict):
        data = data["widths"]
    if not isinstance(data, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in data.values()
    ):
        raise ValueError(
            f"spec file {str(path)!r} must hold a plan or an object layer -> channel count, e.g. "
            '{"inc.0": 32, "inc.3": 48}'
        )
    return dict(data)


# ----- U-Net channel lists (the seed's text format) ------------------------------------------
def unet_conv_names(model: nn.Module) -> list[str]:
    """Conv and transposed-conv layers of a U-Net in module order, without the output head.

    22 layers for the built-in :class:`filterprune.models.UNet` with transposed-conv upsampling
    (18 with ``bilinear=True``), the same count as the seed project's channel list.
    """
    head = getattr(model, "outc", None)
    return [
        name
        for name, module in producing_layers(model).items()
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d) and module is not head
    ]


def unet_channel_list(model: nn.Module) -> list[int]:
    """Output channels of each conv of a U-Net, in the order of :func:`unet_conv_names`."""
    modules = dict(model.named_modules())
    return [int(modules[n].out_channels) for n in unet_conv_names(model)]


def write_channel_txt(path: str | Path, channels: list[int]) -> Path:
    """Write one integer per line (atomically)."""
    return atomic_write_text(path, "".join(f"{int(c)}\n" for c in channels))


def read_channel_txt(path: str | Path, *, expected: int | None = None) -> list[int]:
    """Read a channel list: one positive integer per line (blank lines and ``#`` comments skipped).

    Args:
        path: The text file.
        expected: The number of lines required (the model's conv count), if known.

    Raises:
        FileNotFoundError: The file is missing.
        ValueError: A line is not an integer or not positive, or the count is wrong; the message
            names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"channel list {str(path)!r} does not exist")
    channels = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"{path}:{number}: {text!r} is not an integer; write one channel count per line"
            ) from None
        if value < 1:
            raise ValueError(f"{path}:{number}: channel count must be >= 1, got {value}")
        channels.append(value)
    if expected is not None and len(channels) != expected:
        raise ValueError(
            f"{path}: has {len(channels)} channel counts but the model has {expected} conv layers; "
            "write one line per conv layer, in order (see filterprune.loop.unet_conv_names)"
        )
    return channels


def unet_widths(model: nn.Module, channels: list[int], *, source: str = "channel list") -> dict:
    names = unet_conv_names(model)
    if len(channels) != len(names):
        raise ValueError(
            f"{source}: has {len(channels)} channel counts but {type(model).__name__} has "
            f"{len(names)} conv layers ({names[0]} ... {names[-1]})"
        )
    return dict(zip(names, channels, strict=True))


def unet_from_channels(
    channels: list[int], *, example_inputs: Any = None, **unet_kwargs: Any
) -> tuple[nn.Module, Plan]:
    """Build a built-in U-Net with the given conv widths.

    The full-width U-Net is built with ``unet_kwargs`` and narrowed by :func:`plan_from_widths`
    (the first channels of each layer are kept; load the weights afterwards).

    Returns:
        ``(model, plan)``: the plan from the full-width architecture, for ``plan.json``.
    """
    from ..models import UNet

    model = UNet(**unet_kwargs)
    plan = plan_from_widths(model, unet_widths(model, channels), example_inputs)
    apply_plan(model, plan)
    return model, plan
