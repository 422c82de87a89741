"""A layer's own weight called functionally: ``F.linear(x, self.qkv.weight, bias)``.

Swin-V2 and BEiT build their qkv bias in ``forward`` (``torch.cat((self.q_bias, self.k_bias,
self.v_bias))``, ``k_bias`` a zero buffer or ``torch.zeros_like(self.v_bias)``) and call
``F.linear`` with the ``qkv`` Linear's weight instead of calling the layer. The call is the layer's:
its channels are those of the layer (its spec, as if the layer had run), and each piece of the
concatenated bias that is a parameter or buffer of a non-leaf module becomes a per-channel
member sliced with the output channels it is added to (named by its qualified name, like a layer
scale). A piece that is not one (``zeros_like``) must follow by itself: the probe checks it. A
bias of any other origin, or a weight that is no Linear layer's, keeps the channels it touches.

A depthwise convolution called functionally with a module's own tensor as its weight (timm's
``BlurPool2d``: ``F.conv2d(x, self.filt, stride=2, groups=self.channels)``, a fixed blur filter
per channel in a buffer) passes each channel through on its own: output channel ``i`` reads
input channel ``i`` only. The weight (and a bias) become per-channel members sliced with the
channels, and the module's attribute equal to the channel count (``self.channels``, read as
``groups``) a count member that surgery sets to the channels left (:mod:`..sizes`); one filter
expanded to every channel (``self.filt.expand(C, 1, k, k)``, ``groups=x.shape[1]``) follows the
channels by itself. Any other functional convolution (channels mixed, a weight computed in
``forward``) keeps what it touches.
"""

from __future__ import annotations

import torch

from .. import labels as L
from ..sizes import Span
from .base import TraceState, _outputs, _unknown, rule
from .leaves import apply_leaf


def note_pieces(tr: TraceState, args: tuple, kwargs: dict, out: object) -> None:
    """``torch.cat`` of 1-D tensors: remember which parameter each stretch of the result is."""
    pieces = args[0] if args else kwargs.get("tensors")
    outs = _outputs(out)
    if not isinstance(pieces, (list, tuple)) or len(outs) != 1 or outs[0].dim() != 1:
        return
    spans, offset = [], 0
    for t in pieces:
        if not isinstance(t, torch.Tensor) or t.dim() != 1:
            return
        spans.append((tr.params.get(id(t)), offset, t.shape[0]))
        offset += t.shape[0]
    tr.param_pieces[id(outs[0])] = spans


def _owner(tr: TraceState, weight: torch.Tensor) -> str | None:
    """The name of the Linear leaf whose ``weight`` this is."""
    for name, spec in tr.leaves.items():
        try:
            module = tr.model.get_submodule(name)
        except AttributeError:
            continue  # a member named by a qualified parameter or attribute
        if getattr(module, "weight", None) is weight and isinstance(module, torch.nn.Linear):
            return name if spec.kind == "mixing" else None
    return None


@rule("linear")
def _linear(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    flat = dict(zip(("input", "weight", "bias"), args, strict=False)) | kwargs
    x, weight, bias = flat.get("input"), flat.get("weight"), flat.get("bias")
    owner = _owner(tr, weight) if isinstance(weight, torch.Tensor) else None
    module = tr.model.get_submodule(owner) if owner is not None else None
    own_bias = bias is None or (module is not None and bias is module.bias)
    pieces = tr.param_pieces.get(id(bias)) if bias is not None else None
    named = bias is not None and id(bias) in tr.params
    if module is None or not isinstance(x, torch.Tensor):
        _unknown(tr, name, func, args, kwargs, out)
        return
    apply_leaf(tr, owner, module, tr.leaves[owner], (x,), out)
    if own_bias:
        return
    y = _outputs(out)[0]
    elems = L.vector(tr.label(y), -1, y.shape[-1])
    if module.bias is not None or not (pieces or named):
        # a bias made some other way (or added to the layer's own): its length is fixed
        tr.freeze(
            tr.label(y),
            tr.reason(
                f"op '{name}' with the weight of '{owner}' and a bias made in forward",
                "the bias is no parameter of the model, so its length cannot follow the outputs",
            ),
        )
        return
    for pname, start, length in pieces or [(tr.params[id(bias)], 0, bias.shape[0])]:
        if pname is not None:
            tr.param_elements(pname, elems[start : start + length], 0)


def _held(tr: TraceState, t: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """``(name, tensor)`` of the parameter or buffer that ``t`` is, or is a view of."""
    name = tr.params.get(id(t))
    if name is None:
        return None
    owner, _, attr = name.rpartition(".")
    try:
        held = getattr(tr.model.get_submodule(owner), attr)
    except AttributeError:
        return None
    return (name, held) if isinstance(held, torch.Tensor) else None


@rule("conv1d", "conv2d", "conv3d")
def _depthwise(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    keys = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    flat = dict(zip(keys, args, strict=False)) | kwargs
    x, weight, bias, groups = (flat.get(k) for k in ("input", "weight", "bias", "groups"))
    outs = _outputs(out)
    tensors = [t for t in (weight, bias) if t is not None]
    held = [_held(tr, t) if isinstance(t, torch.Tensor) else None for t in tensors]
    if not (
        isinstance(x, torch.Tensor)
        and isinstance(weight, torch.Tensor)
        and x.dim() == weight.dim()
        and len(outs) == 1
        and all(h is not None for h in held)
    ):
        _unknown(tr, name, func, args, kwargs, out)
        return
    lab = tr.label(x)
    channels = x.shape[1]
    depthwise = groups == channels == weight.shape[0] and weight.shape[1] == 1
    if not depthwise or any(d != 1 for d in L.varying_dims(lab)) or outs[0].shape[1] != channels:
        _unknown(tr, name, func, args, kwargs, out)
        return
    members = []
    for t, (pname, tensor) in zip(tensors, held, strict=True):
        if tensor.shape == t.shape:
            members.append(pname)  # one filter (or bias) per channel: sliced with them
        elif not (tensor.shape[0] == 1 and tensor.shape[1:] == t.shape[1:]):
            _unknown(tr, name, func, args, kwargs, out)  # made from it some other way
            return
        # else one filter expanded to every channel (``filt.expand(C, ...)``): follows them
    elems = L.vector(lab, 1, channels)
    for pname in members:
        tr.param_elements(pname, elems, 0)
    small = lab
    for d in range(2, small.dim()):
        small = small.narrow(d, 0, 1)
    tr.set_label(outs[0], small.reshape(small.shape[:2] + (1,) * (outs[0].dim() - 2)))
    # ``groups`` read from an attribute equal to the channel count follows them
    tr.heads.spans.append(Span(tr.current_module(), lab, 1, 0, channels, channels))
