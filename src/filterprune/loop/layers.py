"""Which layers a run may prune, how wide each layer is, and how many channels each group has.

A *producing* layer is a channel-mixing leaf (conv, transposed conv, linear): its output channels
are the ones a plan removes. Layer selection (include/exclude patterns, layer types, an explicit
list) is translated into the ``ignore=`` list of :func:`filterprune.analyze`: every producing layer
that is not selected keeps all its output channels.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from torch import nn

from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for
from .config import ConfigError, PruneConfig

__all__ = ["CONV", "channel_groups", "ignored_layers", "layer_widths", "producing_layers"]

#: ``layer_types`` alias for every convolution class below.
CONV = "conv"
CONV_TYPES = (
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
)


def producing_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> module for every channel-mixing leaf of ``model``, in module order."""
    out = {}
    for name, module in model.named_modules():
        spec = spec_for(module)
        if spec is not None and spec.kind == "mixing" and name:
            out[name] = module
    return out


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of every producing layer (each physical channel counted once)."""
    return {
        name: int(spec_for(module).channels(module)[1])
        for name, module in producing_layers(model).items()
    }


def channel_groups(graph: DependencyGraph) -> dict[str, int]:
    """Channels of every channel group of ``graph``, each channel counted once.

    A group is keyed by the layers producing its channels, joined by ``" + "`` (``"conv"``; a
    residual stage ``"layer1.0.conv2 + layer1.0.downsample.0"``; a depthwise conv, which passes
    its input's channels on, appears after the layer producing them). Per-channel layers
    (BatchNorm), the consumers of a concatenation and every other reader of a channel are not
    producers, so the values sum to the channels the run can count, and a removal of ``k``
    channels lowers the sum by exactly ``k`` (the iteration table's ``removed``). Frozen groups
    (the output layer, ignored layers) are listed with their unchanged widths.
    """
    out: dict[str, int] = {}
    for group in graph.groups:
        label = " + ".join(dict.fromkeys(group.producers))
        out[label] = out.get(label, 0) + group.size
    return out


def _sample(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} layers)" if len(names) > limit else "")


def _check_matches(option: str, patterns: Sequence[str], names: list[str]) -> None:
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise ConfigError(
                f"PruneConfig.{option}: pattern {pattern!r} matches no prunable layer; "
                f"layers are: {_sample(names)}"
            )


def ignored_layers(model: nn.Module, config: PruneConfig) -> list[str]:
    """Producing layers that the layer selection of ``config`` leaves unpruned.

    Raises:
        ConfigError: A pattern, type or name selects nothing (the message lists the layers).
    """
    layers = producing_layers(model)
    names = list(layers)
    _check_matches("include", config.include, names)
    _check_matches("exclude", config.exclude, names)
    missing = [n for n in config.layers if n not in layers]
    if missing:
        raise ConfigError(
            f"PruneConfig.layers: {missing} are not prunable layers of {type(model).__name__}; "
            f"layers are: {_sample(names)}"
        )
    types = {type(m).__name__ for m in layers.values()}
    wanted = set(config.selected_layer_types)
    if CONV in wanted:  # the alias: every convolution class of the model
        wanted |= {t for t in types if t in CONV_TYPES}
        if not config.layer_types and not wanted & set(CONV_TYPES):
            wanted = set()  # a count on a model without convolutions: every layer
        elif not wanted & set(CONV_TYPES):
            raise ConfigError(
                f"PruneConfig.layer_types: {type(model).__name__} has no convolution to prune "
                f"(its prunable layer types are: {', '.join(sorted(types))}); name them, e.g. "
                "layer_types=['Linear'] (--layer-type Linear)"
            )
    unknown = [t for t in config.layer_types if t not in types and t != CONV]
    if unknown:
        raise ConfigError(
            f"PruneConfig.layer_types: {unknown} match no layer; the model's prunable layer "
            f"types are: {', '.join(sorted(types))}"
        )

    def selected(name: str, module: nn.Module) -> bool:
        if config.include and not any(fnmatch.fnmatchcase(name, p) for p in config.include):
            return False
        if any(fnmatch.fnmatchcase(name, p) for p in config.exclude):
            return False
        if wanted and type(module).__name__ not in wanted:
            return False
        return not config.layers or name in config.layers

    return [name for name, module in layers.items() if not selected(name, module)]
