"""Element-wise ops (arithmetic, activations, dropout, comparisons): channels at equal positions
are one channel; and ops that return their input's labels (dtype, device and copy ops).
"""

from __future__ import annotations

import torch

from .. import labels as L
from ..elements import UNTRACKED
from .base import TraceState, _outputs, _tensors, _unknown, rule

ELEMENTWISE = (
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow",
    "maximum", "minimum", "fmax", "fmin", "where", "lerp", "addcmul", "addcdiv", "atan2",
    "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__", "__mul__", "__rmul__",
    "__imul__", "__truediv__", "__rtruediv__", "__itruediv__", "__pow__", "__rpow__",
    "__floordiv__", "__mod__", "__and__", "__or__", "__xor__", "__neg__", "__abs__",
    "add_", "sub_", "mul_", "div_", "pow_", "clamp_", "clamp_min_", "clamp_max_",
    "relu", "relu_", "relu6", "elu", "elu_", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
    "sigmoid_", "tanh", "tanh_", "hardswish", "hardswish_", "hardsigmoid", "hardtanh",
    "hardtanh_", "leaky_relu", "leaky_relu_", "softplus", "softsign", "logsigmoid", "tanhshrink",
    "hardshrink", "softshrink", "threshold", "threshold_", "rrelu", "glu_", "clamp", "clip",
    "clamp_min", "clamp_max", "abs", "neg", "exp", "expm1", "log", "log1p", "log2", "sqrt",
    "rsqrt", "square", "reciprocal", "sign", "sin", "cos", "erf", "floor", "ceil", "round",
    "trunc", "frac", "nan_to_num", "dropout", "dropout1d", "dropout2d", "dropout3d",
    "alpha_dropout", "feature_alpha_dropout", "lt", "le", "gt", "ge", "eq", "ne", "__lt__",
    "__le__", "__gt__", "__ge__", "logical_not", "logical_and", "logical_or", "isnan", "isinf",
    "masked_fill", "masked_fill_",
)  # fmt: skip


@rule(*ELEMENTWISE)
def _elementwise(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    """Broadcasting element-wise ops: channels at equal positions are the same channel."""
    outs = _outputs(out)
    if not outs:
        return
    shape = outs[0].shape
    nd = len(shape)
    inputs = [t for t in _tensors((args, kwargs)) if t.dim() <= nd]
    labs = [L.align(tr.label(t), nd) for t in inputs]
    reals = [(1,) * (nd - t.dim()) + tuple(t.shape) for t in inputs]
    if tr.params:
        _label_params(tr, inputs, labs, reals)
        _pointwise_of_param(tr, inputs, outs)
    varying = set().union(*(L.varying_dims(lab) for lab in labs)) if labs else set()
    parts = []
    for lab, real in zip(labs, reals, strict=True):
        broadcast = {d for d in range(nd) if real[d] == 1 and shape[d] > 1}
        if not broadcast & varying:
            parts.append(lab)
    result = L.untracked(nd)
    if parts:
        tracked = [p for p in parts if bool((p != UNTRACKED).any())]
        result = torch.broadcast_tensors(*parts)[0] if not tracked else tracked[0]
        for p in parts:
            if p is result:
                continue
            const = p == UNTRACKED
            if bool(const.any()) and varying:
                a, c = torch.broadcast_tensors(result, const)
                tr.freeze(
                    a[c],
                    tr.reason(
                        f"op '{name}'",
                        "combines these channels with a tensor of fixed size "
                        "(a constant, parameter or input)",
                    ),
                )
            tr.union(result, p)
            result = torch.where(result == UNTRACKED, p, result)
    for t in outs:
        tr.set_label(t, result)


def _label_params(tr: TraceState, inputs: list, labs: list, reals: list) -> None:
    """Label a parameter that meets one channel dimension (a layer scale) with those channels.

    ``gamma * x`` with ``gamma`` of shape ``(C, 1, 1)``: instead of freezing the channels as a
    tensor of fixed size, the parameter joins the graph as a per-channel member and is sliced
    with them. A view of it (timm's ``x.mul(self.gamma.reshape(1, -1, 1, 1))``, GRN's
    ``self.weight.view(1, 1, 1, -1)``) counts as the parameter (see ``shape._param_view``).
    """
    nd = len(reals[0]) if reals else 0
    for i, t in enumerate(inputs):
        name = tr.params.get(id(t))
        if name is None or not bool((labs[i] == UNTRACKED).all()):
            continue
        dims = [d for d in range(nd) if reals[i][d] > 1]
        for j, lab in enumerate(labs):
            vary = L.varying_dims(lab)
            # or a parameter per head on a map varying within the heads too: XCiT's
            # ``temperature`` of shape (heads, 1, 1) on (B, heads, head_dim, head_dim)
            # (a parameter of one element, ultralytics' ``logit_scale.exp()``, meets none)
            d = vary[0] if vary and (len(vary) == 1 or dims == vary[:1]) else None
            # a position embedding ``(1, N, C)`` meets the channels along C only
            if j != i and d in dims and lab.shape[d] == reals[i][d]:
                axis = tr.param_axes.get(id(t), d - (nd - t.dim()))
                if id(t) in tr.param_origin:
                    axis = tr.param_origin[id(t)][d - (nd - t.dim())]
                    if axis < 0:
                        continue
                elems = tr.param_elements(name, L.vector(lab, d, lab.shape[d]), axis)
                labs[i] = L.along(d, nd, elems)
                break


def _pointwise_of_param(tr: TraceState, inputs: list, outs: list) -> None:
    """``clamp(self.logit_scale, max=4.6).exp()`` (Swin-V2): an element-wise function of one
    parameter and numbers, of the parameter's shape, counts as the parameter (slicing commutes
    with it), so it can meet the channels as a per-channel member."""
    if len(inputs) != 1 or len(outs) != 1 or id(inputs[0]) not in tr.params:
        return
    x, y = inputs[0], outs[0]
    if tuple(x.shape) != tuple(y.shape) or bool((tr.label(x) != UNTRACKED).any()):
        return
    tr.params[id(y)] = tr.params[id(x)]
    for table in (tr.param_origin, tr.param_axes):
        if id(x) in table:
            table[id(y)] = table[id(x)]


# copies and casts of a parameter (``posemb.float()``) that keep its axes
_SAME_VALUES = {"contiguous", "clone", "to", "float", "double", "half", "bfloat16", "type"}


@rule(
    "to", "type", "type_as", "float", "double", "half", "bfloat16", "detach", "detach_",
    "contiguous", "clone", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
    "randn_like", "attr:data", "cpu", "cuda", "requires_grad_", "as_strided_",
)  # fmt: skip
def _same_as_first(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if first is not None and id(first) in tr.params and name in _SAME_VALUES:
        from .shape import param_origin

        param_origin(tr, name, args, out)
    for t in _outputs(out):
        if first is not None and tuple(first.shape) == tuple(t.shape):
            tr.set_label(t, tr.label(first))
        else:
            _unknown(tr, name, func, args, kwargs, out)
            return
