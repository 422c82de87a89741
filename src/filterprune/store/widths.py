"""Architectures from plain width specs: ``{layer: channels}`` JSON or a U-Net channel list.

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
from ..choose import producing_layers
from ..errors import ConfigError
from ..plan import Plan
from ..surgery import apply_plan

__all__ = [
    "channel_layers",
    "channel_list",
    "channel_widths",
    "plan_from_widths",
    "unet_channel_list",
    "unet_conv_names",
    "unet_from_channels",
    "unet_widths",
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


OUTPUT_REASON = "model output"  # how the tracer explains a group the model returns


def _conv_layers(model: nn.Module, example_inputs: Any = None) -> tuple[list[str], set[str]]:
    """Conv and transposed-conv layers in module order, and those among them that are the head.

    The head is found from the graph, not by name: a layer whose output channels are what the
    model returns (a fixed width), wherever it sits (``outc``, ``outc.conv``, ``head.1``...).
    """
    convs = [
        name
        for name, module in producing_layers(model).items()
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d)
    ]
    if not convs:
        return [], set()
    example = _default_example(model) if example_inputs is None else example_inputs
    graph = analyze(model, example, probe=False)
    heads = {
        producer
        for group in graph.groups
        if any(reason.startswith(OUTPUT_REASON) for reason in group.reasons)
        for producer in group.producers
    }
    return convs, heads & set(convs)


def channel_layers(model: nn.Module, example_inputs: Any = None) -> list[str]:
    """The layers a channel list describes: convs in module order, without the output head.

    22 layers for the built-in :class:`filterprune.models.UNet` with transposed-conv upsampling
    (18 with ``bilinear=True``), the same count as the seed project's channel list; also 22 for
    a U-Net whose 1x1 output conv sits inside a wrapper module. ``example_inputs`` (default: a
    zero 32x32 batch of one) is traced to find the head.
    """
    convs, heads = _conv_layers(model, example_inputs)
    return [name for name in convs if name not in heads]


def unet_conv_names(model: nn.Module, example_inputs: Any = None) -> list[str]:
    """The U-Net name of :func:`channel_layers` (kept for 0.1 callers)."""
    return channel_layers(model, example_inputs)


def channel_list(model: nn.Module, example_inputs: Any = None) -> list[int]:
    """Output channels of each layer of :func:`channel_layers`: the lines of ``channels.txt``."""
    modules = dict(model.named_modules())
    return [int(modules[n].out_channels) for n in channel_layers(model, example_inputs)]


def unet_channel_list(model: nn.Module, example_inputs: Any = None) -> list[int]:
    """The U-Net name of :func:`channel_list` (kept for 0.1 callers)."""
    return channel_list(model, example_inputs)


def _expected_lines(model: nn.Module, convs: list[str], heads: set[str]) -> str:
    modules = dict(model.named_modules())
    lines = [
        f"line {i} {name} ({modules[name].out_channels} channels in the full model)"
        for i, name in enumerate((n for n in convs if n not in heads), 1)
    ]
    text = "expected one line per conv layer, in order: " + "; ".join(lines)
    if heads:
        shown = ", ".join(f"{h} ({modules[h].out_channels})" for h in sorted(heads))
        text += f"; the output head {shown} keeps its width and may be listed or left out"
    return text


def channel_widths(
    model: nn.Module,
    channels: list[int],
    *,
    example_inputs: Any = None,
    source: str = "channel list",
) -> dict[str, int]:
    """Layer name -> width for :func:`plan_from_widths`, from a channel list.

    The list has one line per layer of :func:`channel_layers`; a list that also holds the output
    head's line (with its fixed width) is accepted too, and that line is dropped.

    Raises:
        ValueError: The count fits neither form, or a head line asks for another width; the
            message lists the expected lines layer by layer.
    """
    convs, heads = _conv_layers(model, example_inputs)
    names = [n for n in convs if n not in heads]
    if not names:
        raise ConfigError(f"{source}: {type(model).__name__} has no conv layers to describe")
    if len(channels) == len(names):
        return dict(zip(names, channels, strict=True))
    concat = _concat_inputs(model, names)
    if concat and len(channels) == len(names) + len(concat):
        return _with_concat_lines(names, channels, concat, source)
    if heads and len(channels) == len(convs):
        widths = dict(zip(convs, channels, strict=True))
        modules = dict(model.named_modules())
        for head in heads:
            if widths[head] != modules[head].out_channels:
                line = convs.index(head) + 1
                raise ConfigError(
                    f"{source}: line {line} is the output head {head}, which keeps its "
                    f"{modules[head].out_channels} channels (the model's output), got "
                    f"{widths[head]}; fix the line or leave it out"
                )
        return {n: w for n, w in widths.items() if n not in heads}
    raise ConfigError(
        f"{source}: has {len(channels)} channel counts but the model has {len(names)} conv "
        f"layers; {_expected_lines(model, convs, heads)}"
    )


def _concat_inputs(model: nn.Module, names: list[str]) -> dict[str, list[str]]:
    """Conv -> the listed layers concatenated into its input (the model's own account)."""
    inputs = getattr(model, "channel_list_inputs", None)
    if not callable(inputs):
        return {}
    found = inputs()
    return {c: srcs for c, srcs in found.items() if c in names and set(srcs) <= set(names)}


def _with_concat_lines(
    names: list[str], channels: list[int], concat: dict[str, list[str]], source: str
) -> dict[str, int]:
    """Widths from a list that also gives, before each conv reading a concatenation, the width of
    that concatenation (the seed project's U-Net channel files); each such line must be the sum
    of the widths it concatenates."""
    widths: dict[str, int] = {}
    sums: list[tuple[int, str, int]] = []
    values = iter(enumerate(channels, 1))
    for name in names:
        if name in concat:
            line, total = next(values)
            sums.append((line, name, total))
        widths[name] = next(values)[1]
    for line, name, total in sums:
        parts = [widths[s] for s in concat[name]]
        if sum(parts) != total:
            shown = " + ".join(f"{s} ({w})" for s, w in zip(concat[name], parts, strict=True))
            raise ConfigError(
                f"{source}: line {line} gives the concatenated input of {name} as {total}, but "
                f"the lines of the layers it concatenates give {shown} = {sum(parts)}; fix the "
                "line (or the lines of those layers)"
            )
    return widths


def unet_widths(
    model: nn.Module, channels: list[int], *, source: str = "channel list"
) -> dict[str, int]:
    """The U-Net name of :func:`channel_widths` (kept for 0.1 callers)."""
    return channel_widths(model, channels, source=source)


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
    widths = channel_widths(model, channels, example_inputs=example_inputs)
    plan = plan_from_widths(model, widths, example_inputs)
    apply_plan(model, plan)
    return model, plan
