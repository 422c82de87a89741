"""Weight tying: one tensor held by several layers keeps being one tensor after pruning.

When two traced layers hold the same ``Parameter`` (``decoder.weight = encoder.weight``, a conv
reused under two names), removing a channel from one removes it from the other. So the channels
that index the shared tensor along the same axis are merged into one class: they are removed
together, and surgery slices the tensor once and hands the same new ``Parameter`` back to every
holder (:mod:`filterprune.surgery.apply`). A tensor shared along *different* channel roles (one
layer's output axis is the other's input axis, or the sizes differ) cannot stay tied under a
removal, so its channels are frozen with a reason naming both layers.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from .elements import ElementSets
from .specs import LayerSpec

__all__ = ["tie_shared_parameters"]


def _uses(spec: LayerSpec, module: nn.Module) -> dict[tuple[int, str], dict[int, str]]:
    """``(id(tensor), attribute) -> {axis: "out" or "in"}`` of the module's channel tensors."""
    found: dict[tuple[int, str], dict[int, str]] = {}
    for role, params in (("out", spec.out_params(module)), ("in", spec.in_params(module))):
        for p in params:
            tensor = getattr(module, p.name, None)
            if tensor is not None:
                found.setdefault((id(tensor), p.name), {})[p.axis % tensor.dim()] = role
    return found


def tie_shared_parameters(
    modules: Mapping[str, nn.Module],
    leaves: Mapping[str, LayerSpec],
    module_in: Mapping[str, list[int]],
    module_out: Mapping[str, list[int]],
    sets: ElementSets,
) -> list[tuple[str, str]]:
    """Merge (or freeze) the channels of traced layers that share a tensor; return the pairs.

    The channels indexing the shared tensor along the same axis are merged, whatever role that
    axis plays in each layer: a conv and a transposed conv tied in an autoencoder merge the
    conv's outputs with the transposed conv's inputs.

    Args:
        modules: Traced leaf name -> module.
        leaves: Traced leaf name -> its :class:`LayerSpec`.
        module_in, module_out: Leaf name -> its input / output channel elements.
        sets: The element classes, merged or frozen in place.
    """
    sides = {"out": module_out, "in": module_in}
    holders: dict[int, list[tuple[str, str, dict[int, str]]]] = {}
    for name, module in modules.items():
        spec = leaves.get(name)
        if spec is None or spec.kind == "opaque":
            continue
        for (key, attr), axes in _uses(spec, module).items():
            holders.setdefault(key, []).append((name, attr, axes))
    tied = []
    for users in holders.values():
        first, attr0, axes0 = users[0]
        for other, attr, axes in users[1:]:
            if other == first:
                continue
            tied.append((first, other))
            pairs = []
            same = axes.keys() == axes0.keys()
            for axis in sorted(axes0) if same else ():
                a = sides[axes0[axis]].get(first, [])
                b = sides[axes[axis]].get(other, [])
                if len(a) != len(b):
                    same = False
                    break
                pairs.extend(zip(a, b, strict=True))
            if same:
                sets.union_pairs(pairs)
                continue
            reason = (
                f"layers '{first}' ({attr0}) and '{other}' ({attr}) share one tensor but index "
                "its channels differently: removing a channel from one would break the tie"
            )
            for name, used in ((first, axes0), (other, axes)):
                for role in set(used.values()):
                    for e in sides[role].get(name, []):
                        sets.freeze(e, reason)
    return tied
