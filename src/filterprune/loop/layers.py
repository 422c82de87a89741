"""Which layers a run may prune, and how wide each layer is.

A *producing* layer is a channel-mixing leaf (conv, transposed conv, linear): its output channels
are the ones a plan removes. The layer filters of a :class:`PruneConfig` (include/exclude
patterns, layer types, an explicit list) are those of :class:`filterprune.Selection`, matched by
:func:`filterprune.select.unselected_layers`; every producing layer that is not selected keeps
all its output channels.
"""

from __future__ import annotations

from torch import nn

from ..graph.specs import spec_for
from ..select import producing_layers, unselected_layers
from ..settings import LAYER_FILTERS, Selection
from .config import PruneConfig

__all__ = ["ignored_layers", "layer_widths", "producing_layers"]


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output channels of every producing layer (each physical channel counted once)."""
    return {
        name: int(spec_for(module).channels(module)[1])
        for name, module in producing_layers(model).items()
    }


def ignored_layers(model: nn.Module, config: PruneConfig) -> list[str]:
    """Producing layers that the layer selection of ``config`` leaves unpruned.

    Raises:
        ConfigError: A pattern, type or name selects nothing (the message lists the layers).
    """
    filters = Selection(**{name: getattr(config, name) for name in LAYER_FILTERS})
    return unselected_layers(model, filters, owner="PruneConfig")
