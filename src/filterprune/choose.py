"""Selection: which layers may lose channels, and which channels each group loses.

:class:`~filterprune.config.Selection` says how many and from which layers; :func:`select`
turns per-channel scores into the channels to remove; :func:`match_modules` is the one matcher of
module names, objects and types that ``ignore=`` and the layer filters share.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .config.base import is_int
from .config.recipe import CONV
from .config.selection import Selection, round_up
from .errors import ConfigError
from .graph.groups import DependencyGraph, Group
from .graph.specs import spec_for

logger = logging.getLogger("filterprune")

__all__ = ["Selection", "match_modules", "producing_layers", "select", "unselected_layers"]


#: ``widths(group, keep, lowest) -> keep``: a group's width, given the ranking's and the least allowed
Widths = Callable[[Group, int, int], int]


def _lowest(scores: torch.Tensor, k: int) -> list[int]:
    if k <= 0:
        return []
    order = torch.sort(scores.detach().double().flatten(), stable=True).indices  # ties: lower index
    return sorted(order[:k].tolist())


def _rounded_removal(n: int, k: int, sel: Selection, cap: float = 1.0) -> int:
    keep = round_up(max(n - k, sel.min_channels), sel.round_to)
    return max(0, min(n - min(keep, n), sel.max_removable(n, cap)))


def _on_staircase(
    out: dict[str, list[int]],
    groups: list[Group],
    scores: dict[str, torch.Tensor],
    selection: Selection,
    widths: Widths,
    cap: float,
) -> dict[str, list[int]]:
    """``out`` with each touched group's width moved to the one ``widths`` chooses: the lowest
    scores of the group go, as many as the chosen width leaves."""
    for g in groups:
        k = len(out[g.name])
        if not k:
            continue
        lowest = g.size - selection.max_removable(g.size, cap)
        keep = widths(g, g.size - k, lowest)
        if keep != g.size - k:
            out[g.name] = _lowest(scores[g.name], g.size - max(lowest, min(g.size, keep)))
    return out


def select(
    graph: DependencyGraph,
    scores: dict[str, torch.Tensor],
    selection: Selection,
    widths: Widths | None = None,
) -> dict[str, list[int]]:
    """Indices (within each group) of the channels to remove.

    ``widths(group, keep, lowest)``, where given, moves each touched group's width from the
    ``keep`` the ranking chose to one it prefers, no lower than ``lowest`` (the limits of
    ``selection``): :class:`filterprune.measure.staircase.StaircaseWidths` picks widths on
    measured latency staircases.
    """
    groups: list[Group] = [g for g in graph.prunable if g.name in scores]
    for g in groups:
        if scores[g.name].numel() != g.size:
            raise ConfigError(
                f"criterion returned {scores[g.name].numel()} scores for group '{g.name}', "
                f"which has {g.size} channels"
            )
    if selection.scope == "per_group":
        out = {}
        for g in groups:
            k = selection.removed_for(g.size)  # at least the share, in whole units
            out[g.name] = _lowest(scores[g.name], _rounded_removal(g.size, k, selection))
        return out if widths is None else _on_staircase(out, groups, scores, selection, widths, 1.0)
    total = sum(g.size for g in groups)
    if is_int(selection.amount):  # a channel count
        budget = min(selection.amount, total)
    else:
        budget = math.floor(total * selection.amount + 1e-9)
    cap = selection.layer_fraction(budget / total if total else 0.0)
    values = [scores[g.name].detach().double().flatten().tolist() for g in groups]
    ranked = sorted((v, gi, i) for gi, row in enumerate(values) for i, v in enumerate(row))
    taken: dict[int, list[int]] = {gi: [] for gi in range(len(groups))}
    limits = [selection.max_removable(g.size, cap) for g in groups]
    for _score, gi, i in ranked:
        if budget <= 0:
            break
        if len(taken[gi]) < limits[gi]:
            taken[gi].append(i)
            budget -= 1
    out = {}
    for gi, g in enumerate(groups):
        k = _rounded_removal(g.size, len(taken[gi]), selection, cap)
        chosen = taken[gi]  # ascending score order: keep the lowest k after rounding
        out[g.name] = sorted(chosen[:k])
    return out if widths is None else _on_staircase(out, groups, scores, selection, widths, cap)


# ----- which layers -----------------------------------------------------------------------------
def _matches(name: str, module: nn.Module, item: str | nn.Module | type) -> bool:
    if isinstance(item, str):
        return fnmatch.fnmatchcase(name, item)
    if isinstance(item, nn.Module):
        return module is item
    return isinstance(item, type) and isinstance(module, item)


def match_modules(
    modules: Mapping[str, nn.Module],
    items: Iterable[str | nn.Module | type],
    *,
    unmatched: Callable[[str], str],
) -> list[str]:
    """Names of ``modules`` that any item matches, in their order.

    Args:
        modules: Module name -> module (``dict(model.named_modules())`` or a subset).
        items: fnmatch patterns of names, module objects, or module types (``isinstance``).
        unmatched: Message for a pattern that matches no name; it raises :class:`ConfigError`.
    """
    items = list(items)
    names = [n for n, m in modules.items() if any(_matches(n, m, item) for item in items)]
    for item in items:
        if isinstance(item, str) and not any(fnmatch.fnmatchcase(n, item) for n in names):
            raise ConfigError(unmatched(item))
    return names


def producing_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> module for every channel-mixing leaf of ``model``, in module order."""
    out = {}
    for name, module in model.named_modules():
        spec = spec_for(module)
        if spec is not None and spec.kind == "mixing" and name:
            out[name] = module
    return out


def _sample(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} layers)" if len(names) > limit else "")


def unselected_layers(
    model: nn.Module, selection: Selection, *, owner: str = "Selection"
) -> list[str]:
    """Producing layers that the layer filters of ``selection`` leave unpruned.

    Raises:
        ConfigError: A pattern, type or name selects nothing (the message, naming
            ``owner.field``, lists the layers).
    """
    if not selection.filters_layers:
        return []
    layers = producing_layers(model)
    names = list(layers)

    def no_match(option: str) -> Callable[[str], str]:
        return lambda pattern: (
            f"{owner}.{option}: pattern {pattern!r} matches no prunable layer; "
            f"layers are: {_sample(names)}"
        )

    included = match_modules(layers, selection.include, unmatched=no_match("include"))
    excluded = set(match_modules(layers, selection.exclude, unmatched=no_match("exclude")))
    missing = [n for n in selection.layers if n not in layers]
    if missing:
        raise ConfigError(
            f"{owner}.layers: {missing} are not prunable layers of {type(model).__name__}; "
            f"layers are: {_sample(names)}"
        )
    types = {type(m).__name__ for m in layers.values()}
    unknown = [t for t in selection.layer_types if t not in types and t != CONV]
    if unknown:
        raise ConfigError(
            f"{owner}.layer_types: {unknown} match no layer; the model's prunable layer "
            f"types are: {', '.join(sorted(types))}"
        )
    convs = any(_is_conv(m) for m in layers.values())
    if CONV in selection.layer_types and not convs:
        logger.info(
            "%s has no convolution: layer_types 'conv' selects all its layers",
            type(model).__name__,
        )

    def selected(name: str, module: nn.Module) -> bool:
        return (
            (not selection.include or name in included)
            and name not in excluded
            and _type_selected(module, selection.layer_types, convs)
            and (not selection.layers or name in selection.layers)
        )

    return [name for name, module in layers.items() if not selected(name, module)]


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def _type_selected(module: nn.Module, types: Sequence[str], convs: bool) -> bool:
    """Whether ``layer_types`` keep ``module``: by class name, or every conv for ``"conv"``
    (every layer of a model that has no convolution)."""
    if not types or type(module).__name__ in types:
        return True
    return CONV in types and (_is_conv(module) or not convs)
