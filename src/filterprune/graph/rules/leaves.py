"""Leaf modules: how a layer's :class:`~filterprune.graph.specs.LayerSpec` maps its channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .. import labels as L
from ..elements import UNTRACKED
from .base import TraceState, _outputs, _tensors

if TYPE_CHECKING:
    from ..specs import LayerSpec


def _couple(tr: TraceState, spec: LayerSpec, module: nn.Module, ins: list, outs: list) -> None:
    """Let the layer merge what it removes together; grouped layers follow ``tr.grouped``."""
    if spec.groups_attr(module) is not None:
        spec.couple(module, ins, outs, tr.sets, within=tr.grouped == "within")
    else:
        spec.couple(module, ins, outs, tr.sets)


def _channels_first_subclass(spec, lab: torch.Tensor, x: torch.Tensor, in_dim: int, n_in: int):
    """A per-channel subclass given NCHW channels where its base expects them last.

    Only for subclasses (their forward may permute); the probe checks the pruned copy.
    """
    from ..specs import SubclassSpec

    return (
        isinstance(spec, SubclassSpec)
        and spec.kind == "perchannel"
        and in_dim != 1
        and x.dim() > 2
        and L.varying_dims(lab) == [1]
        and x.shape[1] == n_in
    )


def apply_leaf(tr: TraceState, name: str, module: nn.Module, spec: LayerSpec, args, output) -> None:
    outs = _outputs(output)
    inputs = _tensors(args)
    if spec.kind == "opaque" or not inputs or not outs:
        reason = tr.reason(
            f"module '{name}' ({type(module).__name__})",
            "it is an opaque leaf; register it with register_leaf(..., channel_params=...) "
            "if its channels can be pruned",
        )
        for t in inputs:
            tr.freeze(tr.label(t), reason)
        for t in outs:
            tr.set_label(t, L.untracked(t.dim()))
        return
    x = inputs[0]
    lab = tr.label(x)
    unknown = getattr(spec, "unknown", None)
    if unknown:
        reason = tr.reason(
            f"module '{name}' ({type(module).__name__}, a subclass of "
            f"{type(module).__mro__[1].__name__})",
            f"it holds {', '.join(unknown)} whose channel axis is not known; register its type "
            "with register_layer if these can be sliced",
        )
        for t in inputs:
            tr.freeze(tr.label(t), reason)
    in_dim = spec.in_dim % x.dim()
    n_in, n_out = spec.channels(module)
    if _channels_first_subclass(spec, lab, x, in_dim, n_in):
        in_dim = 1  # ConvNeXt's LayerNorm2d: a LayerNorm subclass permuting NCHW inside
    other = [d for d in L.varying_dims(lab) if d != in_dim]
    if other:
        tr.freeze(
            lab,
            tr.reason(
                f"module '{name}'",
                f"its input channels vary along dimension {other[0]}, not {in_dim}",
            ),
        )
    in_elems = L.vector(lab, in_dim, x.shape[in_dim])
    if len(in_elems) != n_in:  # e.g. a Linear applied to a non-feature dimension
        tr.freeze(lab, tr.reason(f"module '{name}'", "input size does not match its channels"))
        in_elems = [UNTRACKED] * n_in
    if name in tr.module_in:  # shared module called again: same weights, same channels
        for a, b in zip(tr.module_in[name], in_elems, strict=True):
            tr.sets.union(a, b)
    else:
        tr.module_in[name] = in_elems
        tr.order.append(name)
    if spec.kind == "perchannel":
        out_elems = in_elems
        tr.module_out.setdefault(name, out_elems)
        _couple(tr, spec, module, in_elems, out_elems)
        for t in outs:
            tr.set_label(t, lab if t.shape == x.shape else L.untracked(t.dim()))
        return
    if name not in tr.module_out:
        seeded = tr.seed_outputs.get(name)
        tr.module_out[name] = list(seeded) if seeded is not None else tr.sets.new(n_out)
    out_elems = tr.module_out[name]
    _couple(tr, spec, module, tr.module_in[name], out_elems)
    for t in outs:
        tr.set_label(t, L.along(spec.out_dim, t.dim(), out_elems))
