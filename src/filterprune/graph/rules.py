"""Channel rules: how each op maps input labels to output labels.

Rules are looked up by the op's ``__name__`` (``torch.add``, ``Tensor.add`` and ``Tensor.__add__``
behave alike). An op with no rule is never guessed: every channel it touches is frozen, with a
reason naming the op and the source line. Leaf modules are handled by :func:`apply_leaf` using
their :class:`~filterprune.graph.specs.LayerSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from .._registry import Registry
from ..errors import ConfigError, FilterpruneError, UnknownNameError
from . import labels as L
from .elements import UNTRACKED, ElementSets

if TYPE_CHECKING:
    from .specs import LayerSpec


class TraceState(Protocol):
    """What a rule may read and change: the state of one trace (see :mod:`.tracer`).

    Rules sit below the tracer that calls them; they see it only through this interface.
    """

    sets: ElementSets
    module_in: dict[str, list[int]]
    module_out: dict[str, list[int]]
    order: list[str]
    seed_outputs: dict[str, list[int]]
    params: dict[int, str]  # id -> name of the model's non-leaf parameters and buffers
    grouped: str  # how grouped layers lose channels: "within" or "whole"

    def label(self, t: torch.Tensor) -> torch.Tensor: ...
    def set_label(self, t: torch.Tensor, lab: torch.Tensor) -> None: ...
    def freeze(self, lab: torch.Tensor, reason: str) -> None: ...
    def union(self, a: torch.Tensor, b: torch.Tensor) -> None: ...
    def reason(self, what: str, why: str) -> str: ...
    def param_elements(self, name: str, elems: list[int], axis: int) -> list[int]: ...


Rule = Callable[[TraceState, str, Any, tuple, dict, Any], None]
RULES: Registry[Rule] = Registry(
    "op rule",
    "op rules",
    register_with="filterprune.graph.rules.rule",
    error=UnknownNameError,
    invalid=ConfigError,
)


def rule(*names: str, override: bool = False) -> Callable[[Rule], Rule]:
    """Register a rule for ops with the given ``__name__`` values.

    A name is registered once: a name with a rule already raises
    :class:`~filterprune.errors.ConfigError` naming that rule, unless ``override`` is true.
    """

    def deco(fn: Rule) -> Rule:
        for n in names:
            RULES.add(n, fn, override=override)
        return fn

    return deco


def _tensors(obj: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _outputs(out: Any) -> list[torch.Tensor]:
    return _tensors(out)


def apply_rule(tr: TraceState, name: str, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
    handler = RULES.find(name)
    if handler is None:
        handler = _unknown
    handler(tr, name, func, args, kwargs, out)


def _unknown(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    inputs = _tensors((args, kwargs))
    touched = [tr.label(t) for t in inputs]
    if any(L.varying_dims(lab) or int(lab.reshape(-1)[0]) != UNTRACKED for lab in touched):
        reason = tr.reason(
            f"op '{name}'",
            "filterprune has no channel rule for it, so the channels it touches are kept. "
            "Wrap it in a module and register_leaf it, or ignore the layers feeding it",
        )
        for lab in touched:
            tr.freeze(lab, reason)
    for t in _outputs(out):
        tr.set_label(t, L.untracked(t.dim()))


# ----- element-wise ---------------------------------------------------------------------------
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
    with them.
    """
    nd = len(reals[0]) if reals else 0
    for i, t in enumerate(inputs):
        name = tr.params.get(id(t))
        if name is None or not bool((labs[i] == UNTRACKED).all()):
            continue
        dims = [d for d in range(nd) if reals[i][d] > 1]
        if len(dims) != 1:
            continue
        d = dims[0]
        for j, lab in enumerate(labs):
            if j != i and L.varying_dims(lab) == [d] and lab.shape[d] == reals[i][d]:
                elems = tr.param_elements(name, L.vector(lab, d, lab.shape[d]), d - (nd - t.dim()))
                labs[i] = L.along(d, nd, elems)
                break


@rule(
    "to", "type", "type_as", "float", "double", "half", "bfloat16", "detach", "detach_",
    "contiguous", "clone", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
    "randn_like", "attr:data", "cpu", "cuda", "requires_grad_", "as_strided_",
)  # fmt: skip
def _same_as_first(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    first = args[0] if args and isinstance(args[0], torch.Tensor) else None
    for t in _outputs(out):
        if first is not None and tuple(first.shape) == tuple(t.shape):
            tr.set_label(t, tr.label(first))
        else:
            _unknown(tr, name, func, args, kwargs, out)
            return


@rule("matmul", "__matmul__", "bmm")
def _matmul(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    """``a @ b`` of activations (attention: ``q @ k^T``, ``attn @ v``).

    The result's rows follow ``a``, its columns ``b``, its batch dimensions both (``attn @ v``
    keeps ``v``'s channels). Contracting channels (``q @ k^T`` over the head size, or with a
    weight matrix of fixed size) keeps them: the product changes when one goes.
    """
    a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
    result = out if isinstance(out, torch.Tensor) else None
    tensors = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    if result is None or not tensors or min(a.dim(), b.dim()) < 2:
        _unknown(tr, name, func, args, kwargs, out)
        return
    nd = max(a.dim(), b.dim())
    la, lb = L.align(tr.label(a), nd), L.align(tr.label(b), nd)
    ka, kb = nd - 1 in L.varying_dims(la), nd - 2 in L.varying_dims(lb)
    if ka or kb:
        reason = tr.reason(f"op '{name}'", "it sums products over these channels")
        for tracked in [lab for lab, k in ((la, ka), (lb, kb)) if k]:
            tr.freeze(tracked, reason)
        tr.set_label(result, L.untracked(result.dim()))
        return
    rows, cols = torch.broadcast_tensors(la.narrow(-1, 0, 1), lb.narrow(-2, 0, 1))
    tr.union(rows, cols)
    merged = torch.where(rows == UNTRACKED, cols, rows)
    tr.set_label(
        result,
        L.compress(merged.contiguous())
        if merged.dim() == result.dim()
        else L.untracked(result.dim()),
    )


# ----- spatial ops: channels pass through, spatial sizes change ---------------------------------
SPATIAL = (
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool2d_with_indices",
    "lp_pool1d", "lp_pool2d", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
    "pad", "grid_sample",
)  # fmt: skip


@rule(*SPATIAL)
def _spatial(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    x = args[0] if args else kwargs.get("input")
    lab = tr.label(x)
    bad = [d for d in L.varying_dims(lab) if d != 1]
    if name == "pad":
        pad = args[1] if len(args) > 1 else kwargs.get("pad")
        padded = {x.dim() - 1 - i // 2 for i, p in enumerate(pad) if p}
        if padded & set(L.varying_dims(lab)):
            bad = L.varying_dims(lab)
        else:  # channels-last windows (Swin) pad only positions, maybe with zeros on channels
            for t in _outputs(out):
                tr.set_label(t, lab)
            return
    if name == "grid_sample":
        bad += [d for d in L.varying_dims(tr.label(args[1])) if d == 1]
    if bad:
        _unknown(tr, name, func, args, kwargs, out)
        return
    for t in _outputs(out):
        if t.dtype == torch.long:  # pooling indices
            tr.set_label(t, L.untracked(t.dim()))
            continue
        small = lab
        for d in range(2, small.dim()):
            small = small.narrow(d, 0, 1)
        tr.set_label(t, small.reshape(small.shape[:2] + (1,) * (t.dim() - 2)))


# ----- reductions -----------------------------------------------------------------------------
REDUCTIONS = (
    "mean", "sum", "nansum", "nanmean", "amax", "amin", "max", "min", "std", "var", "prod",
    "logsumexp", "argmax", "argmin", "median", "norm", "all", "any", "count_nonzero",
)  # fmt: skip
_LINEAR_REDUCTIONS = {"sum", "nansum"}


def _reduced_dims(name: str, args: tuple, kwargs: dict, ndim: int) -> tuple[list[int], bool]:
    if name == "norm":
        dim = kwargs.get("dim", args[2] if len(args) > 2 else None)
        keep = kwargs.get("keepdim", args[3] if len(args) > 3 else False)
    else:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keep = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
    if dim is None:
        return list(range(ndim)), False
    dims = [dim] if isinstance(dim, int) else list(dim)
    return sorted(d % ndim for d in dims), bool(keep)


@rule(*REDUCTIONS)
def _reduction(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    x = args[0]
    if name in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor):
        _elementwise(tr, name, func, args, kwargs, out)
        return
    lab = tr.label(x)
    dims, keep = _reduced_dims(name, args, kwargs, x.dim())
    crossed = [d for d in dims if d in L.varying_dims(lab)]
    if crossed and _couple_fibers(tr, lab, crossed):
        crossed = []  # each reduced fiber goes as one unit: the others are untouched
    if crossed and name not in _LINEAR_REDUCTIONS:
        tr.freeze(
            lab,
            tr.reason(f"'{name}' over the channel dimension", "its value depends on every channel"),
        )
    small = lab
    for d in dims:
        small = small.narrow(d, 0, 1)
    if crossed:
        small = torch.full_like(small, UNTRACKED)
    if not keep:
        small = small.reshape([s for d, s in enumerate(small.shape) if d not in dims])
    for t in _outputs(out):
        tr.set_label(t, small if small.dim() == t.dim() else L.untracked(t.dim()))


def _couple_fibers(tr: TraceState, lab: torch.Tensor, dims: list[int]) -> bool:
    """An op mixing positions along ``dims`` while channels also vary along another dimension.

    SKNet's attention, ``att.view(b, branches, c, 1, 1).softmax(dim=1)``: the softmax mixes the
    branches of each channel, not the channels. Merging the elements of each fiber along ``dims``
    makes each fiber go as one unit, which leaves every other fiber exactly as it was. Returns
    ``False`` (nothing merged) when channels vary along ``dims`` only: then the op mixes them.
    """
    varying = L.varying_dims(lab)
    if not [d for d in varying if d not in dims]:
        return False
    rest = [d for d in range(lab.dim()) if d not in dims]
    grid = lab.permute(*rest, *dims)
    grid = grid.reshape(-1, int(torch.tensor(grid.shape[len(rest) :]).prod()))
    tr.union(grid[:, :1].expand_as(grid), grid)
    return True


@rule("softmax", "log_softmax", "softmin", "cumsum", "cumprod", "normalize")
def _along_dim(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    x = args[0]
    lab = tr.label(x)
    if name == "normalize":
        dim = kwargs.get("dim", args[2] if len(args) > 2 else 1)
    else:
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    along = None if dim is None else dim % x.dim()
    if along is None or (along in L.varying_dims(lab) and not _couple_fibers(tr, lab, [along])):
        tr.freeze(lab, tr.reason(f"'{name}' along the channel dimension", "it mixes channels"))
    for t in _outputs(out):
        tr.set_label(t, lab)


# ----- shape ops: applied literally to the label tensor ---------------------------------------
_LITERAL = {
    "view": "reshape", "view_as": "reshape_as", "reshape": "reshape", "reshape_as": "reshape_as",
    "flatten": "flatten", "unflatten": "unflatten", "permute": "permute",
    "transpose": "transpose", "swapaxes": "swapaxes", "swapdims": "swapdims", "t": "t",
    "squeeze": "squeeze", "unsqueeze": "unsqueeze", "expand": "expand", "expand_as": "expand_as",
    "movedim": "movedim", "moveaxis": "moveaxis", "cat": "cat", "concat": "cat",
    "concatenate": "cat", "stack": "stack", "repeat": "repeat", "tile": "tile", "flip": "flip",
    "__getitem__": "__getitem__", "narrow": "narrow", "select": "select", "split": "split",
    "chunk": "chunk", "unbind": "unbind", "tensor_split": "tensor_split",
    "index_select": "index_select", "roll": "roll", "attr:T": "T", "attr:mT": "mT",
    "squeeze_": "squeeze", "unsqueeze_": "unsqueeze", "transpose_": "transpose",
    "channel_shuffle": "channel_shuffle", "native_channel_shuffle": "channel_shuffle",
}  # fmt: skip
_BAKED = {"__getitem__", "narrow", "select", "index_select", "roll", "unbind", "tensor_split"}


class NeedsValues(FilterpruneError, RuntimeError):
    """A rule needs the values of an index tensor, which a ``meta`` trace does not have."""


def _as_labels(tr: TraceState, obj: Any) -> Any:
    def sub(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex()):
            return tr.label(x).expand(x.shape)
        if isinstance(x, torch.Tensor) and x.is_meta:
            raise NeedsValues(f"the channel rule of this op reads an index tensor {x.shape}")
        return x

    return tree_map(sub, obj)


def _channel_shuffle(lab: torch.Tensor, groups: int) -> torch.Tensor:
    n, c = lab.shape[:2]
    rest = lab.shape[2:]
    return lab.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(n, c, *rest)


@rule(*_LITERAL)
def _shape_op(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    target = _LITERAL[name]
    largs, lkwargs = _as_labels(tr, args), _as_labels(tr, kwargs)
    try:
        if target in ("cat", "stack"):
            result = getattr(torch, target)(*largs, **lkwargs)
        elif target == "channel_shuffle":
            groups = int(args[1] if len(args) > 1 else kwargs["groups"])
            n, c = largs[0].shape[:2]
            rows = largs[0].reshape(n, groups, c // groups, *largs[0].shape[2:])
            _couple_rows(tr, tr.label(args[0]), L.compress(rows))
            result = _channel_shuffle(largs[0], groups)
        elif target in ("T", "mT"):
            result = getattr(largs[0], target)
        else:
            result = getattr(largs[0], target)(*largs[1:], **lkwargs)
    except Exception:  # noqa: BLE001 - any failure means we cannot map channels through it
        _unknown(tr, name, func, args, kwargs, out)
        return
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is not None:
        lab = tr.label(x)
        dims = _indexed_dims(name, args, kwargs, x)
        varying = L.varying_dims(lab)
        if name in ("split", "chunk") and not _split_is_fixed(name, args, kwargs):
            _couple_pieces(tr, name, lab, result, dims, x)
        elif name == "unbind" and set(dims) & set(varying) and len(varying) > 1:
            # ``q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)``:
            # every slice is taken; slices shrinking alike keep their number fixed
            _couple_pieces(tr, name, lab, [L.compress(r) for r in result], dims, x)
        elif (name in _BAKED or name == "split") and set(dims) & set(L.varying_dims(lab)):
            if not (name == "__getitem__" and _full_slices(args[1], x, L.varying_dims(lab))):
                tr.freeze(
                    lab,
                    tr.reason(
                        f"'{name}' on the channel dimension",
                        "it selects channels by positions written in the code",
                    ),
                )
    results = result if isinstance(result, (tuple, list)) else (result,)
    if x is not None and target in _RESHAPES:
        _couple_rows(tr, tr.label(x), L.compress(results[0]))
    for t, lab in zip(_outputs(out), results, strict=False):
        tr.set_label(t, lab)


_RESHAPES = {"reshape", "reshape_as", "unflatten", "channel_shuffle"}


def _couple_rows(tr: TraceState, before: torch.Tensor, after: torch.Tensor) -> None:
    """A reshape that splits the channel dimension into ``(rows, cols)`` (channel shuffle).

    After pruning, the code recomputes ``cols`` from the new channel count, which matches the
    original layout only if every row loses the same columns: merge column ``j`` of all rows.
    """
    if len(L.varying_dims(before)) != 1:
        return
    dims = L.varying_dims(after)
    if len(dims) < 2:
        return
    grid = after.movedim(dims, list(range(len(dims)))).reshape(-1, after.shape[dims[-1]])
    for row in grid[1:]:
        tr.union(grid[0], row)


def setitem(tr: TraceState, args: tuple) -> None:
    """``x[index] = value``: writing to channel positions written in code freezes them."""
    x, index = args[0], args[1]
    lab = tr.label(x)
    varying = L.varying_dims(lab)
    if set(_getitem_dims(index, x.dim())) & set(varying) and not _full_slices(index, x, varying):
        reason = tr.reason(
            "'__setitem__' on the channel dimension", "it writes to channels by position"
        )
        tr.freeze(lab, reason)
        if len(args) > 2 and isinstance(args[2], torch.Tensor):
            tr.freeze(tr.label(args[2]), reason)


def _split_is_fixed(name: str, args: tuple, kwargs: dict) -> bool:
    if name == "chunk":
        return False
    size = kwargs.get("split_size_or_sections", kwargs.get("split_size", args[1]))
    return not isinstance(size, int)


def _couple_pieces(tr, name, lab, result, dims, x) -> None:
    dim = dims[0] if dims else 0
    if dim not in L.varying_dims(lab):
        return
    sizes = {p.shape[dim] for p in result}
    if len(sizes) != 1:
        tr.freeze(lab, tr.reason(f"'{name}' into unequal pieces", "pieces must stay equal"))
        return
    first = result[0]
    for piece in result[1:]:
        tr.union(L.compress(first), L.compress(piece))


def _indexed_dims(name: str, args: tuple, kwargs: dict, x: torch.Tensor) -> list[int]:
    nd = x.dim()
    if name == "__getitem__":
        return _getitem_dims(args[1], nd)
    if name in ("chunk", "split", "unbind", "tensor_split"):
        default = 0
        pos = 2 if name != "unbind" else 1
    elif name in ("narrow", "select", "index_select"):
        default, pos = None, 1
    elif name == "roll":
        dim = kwargs.get("dims", args[2] if len(args) > 2 else None)
        if dim is None:
            return list(range(nd))
        return [d % nd for d in ([dim] if isinstance(dim, int) else dim)]
    else:
        return []
    dim = kwargs.get("dim", args[pos] if len(args) > pos else default)
    return [] if dim is None else [dim % nd]


def _getitem_dims(index: Any, nd: int) -> list[int]:
    """The dimensions of ``x`` that ``x[index]`` selects from with something other than ``:``."""
    items = index if isinstance(index, tuple) else (index,)
    consuming = sum(
        (i.dim() if isinstance(i, torch.Tensor) and i.dtype == torch.bool else 1)
        for i in items
        if i is not None and i is not Ellipsis
    )
    dims, d = [], 0
    for item in items:
        if item is None:
            continue
        if item is Ellipsis:
            d += nd - consuming
            continue
        width = item.dim() if isinstance(item, torch.Tensor) and item.dtype == torch.bool else 1
        if not (isinstance(item, slice) and item == slice(None)):
            dims.extend(range(d, d + width))
        d += width
    return dims


def _full_slices(index: Any, x: torch.Tensor, varying: list[int]) -> bool:
    """``x[:, :n]`` with ``n >= C`` selects everything now and after pruning: harmless."""
    items = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis or i is None for i in items):
        return False
    for d, item in enumerate(items):
        if d not in varying:
            continue
        if not isinstance(item, slice) or item.step not in (None, 1):
            return False
        if item.start not in (None, 0) or (item.stop is not None and item.stop < x.shape[d]):
            return False
    return True


# ----- leaf modules ---------------------------------------------------------------------------
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
    from .specs import SubclassSpec

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
