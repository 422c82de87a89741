"""Architectures from plain width specs: ``{layer: channels}`` JSON or a U-Net channel list.

The files (``channels.txt``, width specs) are read and written by :mod:`filterprune.store.channels`.

The seed project described a pruned U-Net by a text file with one integer per line, the output
channels of each conv layer in order. :func:`plan_from_widths` turns any such spec into the plan
that narrows the original architecture to those widths (keeping each layer's first channels), so
a checkpoint of that shape can be loaded with :func:`filterprune.load` (``plan=...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..api import analyze
from ..errors import ConfigError
from ..plan import Plan
from ..store.channels import read_channel_txt, read_spec, write_channel_txt
from ..surgery import apply_plan
from .layers import producing_layers

__all__ = [
    "plan_from_widths",
    "read_channel_txt",
    "read_spec",
    "unet_channel_list",
    "unet_conv_names",
    "unet_from_channels",
    "unet_widths",
    "write_channel_txt",
]


def _default_example(model: nn.Module) -> torch.Tensor:
    first = next(iter(producing_layers(model).values()), None)
    channels = getattr(first, "in_channels", None)
    if channels is None:
        raise ConfigError(f"pass example_inputs: cannot guess the input of {type(model).__name__}")
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
            raise ConfigError(
                f"channel spec names layer {name!r}, which produces no channel group of "
                f"{type(model).__name__}; layers are: {', '.join(groups)}"
            )
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= group.size:
            raise ConfigError(
                f"channel spec: layer {name!r} must keep an int in 1..{group.size} channels, "
                f"got {width!r}"
            )
        if width < group.size:
            if group.frozen:
                raise ConfigError(
                    f"channel spec: layer {name!r} cannot be narrowed: {group.reasons[0]}"
                )
            removed[name] = list(range(width, group.size))
    return graph.plan(removed)


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


def unet_widths(
    model: nn.Module, channels: list[int], *, source: str = "channel list"
) -> dict[str, int]:
    """Layer name -> width for :func:`plan_from_widths`, from a U-Net channel list."""
    names = unet_conv_names(model)
    if len(channels) != len(names):
        raise ConfigError(
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
