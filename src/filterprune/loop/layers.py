"""Which layers a run may prune, how wide each layer is, and how many channels each group has.

A *producing* layer is a channel-mixing leaf (conv, transposed conv, linear): its output channels
are the ones a plan removes. The layer filters of a :class:`PruneConfig` (include/exclude
patterns, layer types, an explicit list) are those of :class:`filterprune.Selection`, matched by
:func:`filterprune.choose.unselected_layers`; every producing layer that is not selected keeps
all its output channels.
"""

from __future__ import annotations

from torch import nn

from ..choose import producing_layers, unselected_layers
from ..config import PruneConfig
from ..graph.groups import DependencyGraph
from ..graph.specs import spec_for

__all__ = ["channel_groups", "ignored_layers", "layer_widths", "producing_layers"]


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


def ignored_layers(model: nn.Module, config: PruneConfig) -> list[str]:
    """Producing layers that the layer selection of ``config`` leaves unpruned.

    Raises:
        ConfigError: A pattern, type or name selects nothing (the message lists the layers).
    """
    return unselected_layers(model, config.removal, owner="PruneConfig")
