"""Shape ops (view, permute, cat, split, chunk, getitem, channel shuffle, ...), applied literally
to the label tensor; and in-place item assignment.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from ...errors import FilterpruneError
from .. import labels as L
from .. import sizes
from ..elements import UNTRACKED
from .base import TraceState, _outputs, _unknown, rule
from .functional import note_pieces

_LITERAL = {
    "view": "reshape", "view_as": "reshape_as", "reshape": "reshape", "reshape_as": "reshape_as",
    "flatten": "flatten", "unflatten": "unflatten", "permute": "permute",
    "transpose": "transpose", "swapaxes": "swapaxes", "swapdims": "swapdims", "t": "t",
    "squeeze": "squeeze", "unsqueeze": "unsqueeze", "expand": "expand", "expand_as": "expand_as",
    "movedim": "movedim", "moveaxis": "moveaxis", "cat": "cat", "concat": "cat",
    "concatenate": "cat", "stack": "stack", "repeat": "repeat", "tile": "tile", "flip": "flip",
    "__getitem__": "__getitem__", "narrow": "narrow", "select": "select", "split": "split",
    "chunk": "chunk", "unbind": "unbind", "tensor_split": "tensor_split",
    "index_select": "index_select", "roll": "roll", "repeat_interleave": "repeat_interleave", "attr:T": "T", "attr:mT": "mT",
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
    if _constant_through(tr, args, kwargs, out):
        if tr.params:
            param_origin(tr, name, args, out)
            _param_view(tr, name, args, out)
            if target == "cat":
                note_pieces(tr, args, kwargs, out)  # a bias made of parameters (Swin-V2)
                _param_joined(tr, args, kwargs, out)
        return
    if target == "cat" and tr.params:
        _label_tokens(tr, args, kwargs)
    largs, lkwargs = _as_labels(tr, args), _as_labels(tr, kwargs)
    if target == "cat":
        largs = _join_rows(tr, args, kwargs, largs)
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
            if name == "split" and dims and dims[0] in varying:
                sizes.note_pieces(tr, lab, dims[0], result[0].shape[dims[0]], x.shape[dims[0]])
        elif name == "unbind" and set(dims) & set(varying) and len(varying) > 1:
            # ``q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)``:
            # every slice is taken; slices shrinking alike keep their number fixed
            _couple_pieces(tr, name, lab, [L.compress(r) for r in result], dims, x)
        elif (name in _BAKED or name == "split") and set(dims) & set(L.varying_dims(lab)):
            if name == "__getitem__" and _full_slices(args[1], x, L.varying_dims(lab)):
                pass
            elif not sizes.read_bounds(tr, name, args, kwargs, x, lab):
                reason = tr.reason(
                    f"'{name}' on the channel dimension",
                    "it selects channels by positions written in the code",
                )
                cut = [d for d in dims if d in L.varying_dims(lab)]
                if len(cut) != 1 or not tr.heads.within_heads(tr, lab, cut[0], reason):
                    tr.freeze(lab, reason)
    results = result if isinstance(result, (tuple, list)) else (result,)
    if x is not None and target in _RESHAPES:
        _split_rows(tr, tr.label(x), L.compress(results[0]))
    for t, lab in zip(_outputs(out), results, strict=False):
        tr.set_label(t, lab)


def _label_tokens(tr: TraceState, args: tuple, kwargs: dict) -> None:
    """Parameters concatenated with channels along another dimension join their channels.

    ``torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)``: the class (or register) token
    is a row of the sequence, with the embedding's channels; instead of freezing them, the token
    is a per-channel member sliced with them (see ``elementwise._label_params``).
    """
    pieces = args[0] if args else kwargs.get("tensors")
    if not isinstance(pieces, (list, tuple)) or not pieces:
        return
    nd = pieces[0].dim()
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % nd
    labelled = [tr.label(t) for t in pieces]
    found = [(lab, L.varying_dims(lab)) for lab in labelled]
    source = next(((lab, v[0]) for lab, v in found if len(v) == 1 and v[0] != dim), None)
    if source is None:
        return
    lab, d = source
    for t, own in zip(pieces, labelled, strict=True):
        name = tr.params.get(id(t))
        if name is None or bool((own != UNTRACKED).any()) or t.shape[d] != lab.shape[d]:
            continue
        axis = tr.param_axes.get(id(t), d)
        elems = tr.param_elements(name, L.vector(lab, d, lab.shape[d]), axis)
        tr.relabel(t, L.along(d, nd, elems))


def _join_rows(tr: TraceState, args: tuple, kwargs: dict, largs: Any) -> Any:
    """Tensors concatenated along a dimension other than their one channel dimension share it.

    ``torch.cat((cls_tokens, x), dim=1)`` with the class tokens from a Linear and ``x`` from a
    convolution (PiT's pooling stage): channel ``c`` of the result is channel ``c`` of every
    piece, so the pieces' channels are merged position by position and labelled alike.
    """
    pieces = args[0] if args else kwargs.get("tensors")
    if not isinstance(pieces, (list, tuple)) or len(pieces) < 2 or not isinstance(largs, tuple):
        return largs
    nd = pieces[0].dim()
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % nd
    labelled = [tr.label(t) for t in pieces]
    axes = {tuple(L.varying_dims(lab)) for lab in labelled}
    if len(axes) != 1 or len(next(iter(axes))) != 1:
        return largs
    (c,) = next(iter(axes))
    if c == dim or any((lab == UNTRACKED).any() for lab in labelled):
        return largs
    first = L.vector(labelled[0], c, pieces[0].shape[c])
    for lab, t in zip(labelled[1:], pieces[1:], strict=True):
        tr.union(L.along(c, nd, first), L.along(c, nd, L.vector(lab, c, t.shape[c])))
    row = L.along(c, nd, first)
    joined = [row.expand(t.shape) for t in pieces]
    return (type(largs[0])(joined), *largs[1:])


def _constant_through(tr: TraceState, args: tuple, kwargs: dict, out: Any) -> bool:
    """Label the outputs at once when every input carries one label everywhere.

    Whatever a shape op picks from tensors labelled by one element only (an attention map, a
    relative-position table indexed by a buffer), every output position holds that element: no
    label tensor of the full size is built and no index value is read (which a ``meta`` trace
    does not have). Integer tensors alone (index arithmetic) carry no channels.
    """
    value = None
    for t in tree_flatten((args, kwargs))[0]:
        if not isinstance(t, torch.Tensor) or not (t.is_floating_point() or t.is_complex()):
            continue
        lab = tr.label(t)
        if lab.numel() != 1:
            return False
        v = int(lab.reshape(-1)[0])
        if value is not None and v != value:
            return False
        value = v
    if value is None:  # integer tensors only (index arithmetic): they carry no channels
        value = UNTRACKED
    for t in _outputs(out):
        tr.set_label(t, torch.full((1,) * t.dim(), value, dtype=torch.long))
    return True


_RESHAPES = {"reshape", "reshape_as", "unflatten", "channel_shuffle"}
_VIEWS = {
    "view", "reshape", "unsqueeze", "squeeze", "unsqueeze_", "squeeze_", "flatten",
    "unflatten", "expand", "expand_as", "view_as", "reshape_as", "permute", "transpose",
    "movedim", "attr:T",
}  # fmt: skip


def param_origin(tr: TraceState, name: str, args: tuple, out: Any) -> None:
    """Follow which axis of a non-leaf parameter each dimension of a tensor made from it is.

    Swin's relative-position bias: ``table[index.view(-1)].view(N, N, -1).permute(2, 0, 1)``
    gathers rows of a ``(positions, heads)`` table; the heads axis survives as dimension 0 and
    then meets the attention map's heads, so the table is sliced with them (see
    ``elementwise._label_params``). Dimensions made of several axes, or gathered, are ``-1``.
    """
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    outs = _outputs(out)
    pname = tr.params.get(id(x)) if x is not None else None
    if pname is None or len(outs) != 1:
        return
    src = tr.param_origin.get(id(x))
    if src is None:
        if id(x) in tr.param_axes:
            return
        src = tuple(range(x.dim()))  # the stored tensor itself
    y = outs[0]
    if name == "__getitem__" and isinstance(args[1], (torch.Tensor, tuple)):
        origin = _indexed_origin(args[1], src)
        if origin is None:
            return
    elif name == "permute":
        dims = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
        origin = tuple(src[d % x.dim()] for d in dims)
    elif name in ("transpose", "swapaxes", "swapdims"):
        a, b = args[1] % x.dim(), args[2] % x.dim()
        order = list(src)
        order[a], order[b] = order[b], order[a]
        origin = tuple(order)
    elif name in _VIEWS | {"contiguous", "clone", "to", "float", "double", "half", "bfloat16"}:
        origin = tuple(_same_axis(x.shape, y.shape, b, src) for b in range(y.dim()))
    else:
        return
    if any(a >= 0 and y.shape[b] > 1 for b, a in enumerate(origin)):
        tr.params[id(y)] = pname
        tr.param_origin[id(y)] = origin


def _param_joined(tr: TraceState, args: tuple, kwargs: dict, out: Any) -> None:
    """``torch.cat([posemb[:, :1], resampled], dim=1)``: pieces of one parameter with the same
    axes elsewhere are that parameter, the joined dimension no axis of it."""
    pieces = args[0] if args else kwargs.get("tensors")
    outs = _outputs(out)
    if not isinstance(pieces, (list, tuple)) or len(outs) != 1 or not pieces:
        return
    names = {tr.params.get(id(t)) for t in pieces}
    found = [tr.param_origin.get(id(t)) for t in pieces]
    if len(names) != 1 or None in names or None in found:
        return
    nd = outs[0].dim()
    dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % nd
    long = [d for d in range(nd) if d != dim and outs[0].shape[d] > 1]
    if len({tuple(o[d] for d in long) for o in found}) != 1:
        return
    origin = [found[0][d] if d in long else -1 for d in range(nd)]
    tr.params[id(outs[0])] = next(iter(names))
    tr.param_origin[id(outs[0])] = tuple(origin)


def _indexed_origin(index: Any, src: tuple) -> tuple | None:
    """``table[idx]`` or ``table[:, idx]`` (LeViT's ``attention_biases[:, attention_bias_idxs]``):
    full slices keep their axes, one integer index tensor's dimensions take its place; partial
    slices (``bias[:, :N, :N]``) keep none."""
    items = index if isinstance(index, tuple) else (index,)
    tensors = [i for i, t in enumerate(items) if isinstance(t, torch.Tensor)]
    if len(items) > len(src):
        return None
    if not tensors and all(isinstance(i, slice) and i.step in (None, 1) for i in items):
        # ``bias[:, :N, :N]``: a part of an axis is no longer that axis
        cut = tuple(a if i == slice(None) else -1 for a, i in zip(src, items, strict=False))
        return (*cut, *src[len(items) :])
    if len(tensors) != 1:
        return None
    at = tensors[0]
    t = items[at]
    if t.dtype == torch.bool or any(
        not isinstance(i, slice) or i != slice(None) for k, i in enumerate(items) if k != at
    ):
        return None
    return (*src[:at], *(-1,) * t.dim(), *src[at + 1 :])


def _same_axis(before: torch.Size, after: torch.Size, b: int, src: tuple) -> int:
    """The origin of ``after``'s dimension ``b`` if a reshape left it as one of ``before``'s."""
    tail = int(torch.tensor(after[b + 1 :], dtype=torch.long).prod())
    for a in range(len(before)):
        if before[a] == after[b] and int(torch.tensor(before[a + 1 :]).prod()) == tail:
            return src[a]
    return -1


def _param_view(tr: TraceState, name: str, args: tuple, out: Any) -> None:
    """Note a view of a non-leaf parameter with one channel axis as that parameter.

    ``x.mul(self.gamma.reshape(1, -1, 1, 1))``: the element-wise op meets the view, not the
    parameter, yet slicing the parameter slices the view the same way (its other axes have size
    1), so the view is a layer scale like the parameter itself. A view written with the count
    (``reshape(1, 64, 1, 1)``) fails on a pruned copy: the probe finds it.
    """
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is None or name not in _VIEWS:
        return
    pname = tr.params.get(id(x))
    outs = _outputs(out)
    if pname is None or len(outs) != 1:
        return
    if name in ("expand", "expand_as") and outs[0].dim() == x.dim():
        # ``self.cls_token.expand(B, -1, -1)``: the same axes, some repeated
        tr.params[id(outs[0])] = pname
        if id(x) in tr.param_axes:
            tr.param_axes[id(outs[0])] = tr.param_axes[id(x)]
        return
    axis = tr.param_axes.get(id(x))
    if axis is None:
        long = [d for d, n in enumerate(x.shape) if n > 1]
        if len(long) != 1:
            return
        axis = long[0]
    if sum(1 for n in outs[0].shape if n > 1) == 1 and outs[0].numel() == x.numel():
        tr.params[id(outs[0])] = pname
        tr.param_axes[id(outs[0])] = axis


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


def _split_rows(tr: TraceState, before: torch.Tensor, after: torch.Tensor) -> None:
    """A reshape splitting the channel dimension into ``(rows, cols)``: recorded, and decided
    when the trace ends or when the channels reach attention (heads, see :mod:`..heads`)."""
    if len(L.varying_dims(before)) != 1:
        return
    dims = L.varying_dims(after)
    if len(dims) >= 2:
        tr.heads.add_split(tr.current_module(), after, dims)


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
