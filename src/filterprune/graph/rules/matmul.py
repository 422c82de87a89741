"""Products of activations (``a @ b``, ``bmm``): rows follow ``a``, columns ``b``."""

from __future__ import annotations

import torch

from .. import labels as L
from ..elements import UNTRACKED
from .base import TraceState, _unknown, rule


@rule("matmul", "__matmul__", "bmm")
def _matmul(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    """``a @ b`` of activations (attention: ``q @ k^T``, ``attn @ v``).

    The result's rows follow ``a``, its columns ``b``, its batch dimensions both (``attn @ v``
    keeps ``v``'s channels). Contracting channels keeps them (the product changes when one goes),
    except between the heads of an attention (``q @ k^T`` over the head size, see
    :mod:`..heads`): there q's and k's positions are merged, whole heads go, and the map is
    labelled by its head.
    """
    a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other")
    result = out if isinstance(out, torch.Tensor) else None
    tensors = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    if result is None or not tensors or min(a.dim(), b.dim()) < 2:
        _unknown(tr, name, func, args, kwargs, out)
        return
    nd = max(a.dim(), b.dim())
    la, lb = L.align(tr.label(a), nd), L.align(tr.label(b), nd)
    va, vb = L.varying_dims(la), L.varying_dims(lb)
    ka, kb = nd - 1 in va, nd - 2 in vb
    if ka or kb:
        if ka and kb and nd - 2 not in va and nd - 1 not in vb and nd >= 3:
            mode = tr.heads.attention(tr, la, lb)
            if mode == "whole":
                tr.union(la, lb.transpose(-1, -2))  # q's position d meets k's position d
                _label(tr, la.narrow(-1, 0, 1), lb.narrow(-2, 0, 1), result)
                return
            if mode == "dims" and tr.heads.mode == "dims":  # every head loses position d
                tr.union(la, lb.transpose(-1, -2))
                tr.set_label(result, L.untracked(result.dim()))
                return
        if kb and not ka and nd >= 3 and _within_heads(tr, la, lb, result):
            return
        reason = tr.reason(f"op '{name}'", "it sums products over these channels")
        for tracked in [lab for lab, k in ((la, ka), (lb, kb)) if k]:
            tr.freeze(tracked, reason)
        # the summed channels are kept; the rows still follow ``a`` and the columns ``b``
        # (EfficientViM's ``h @ c``: ``h``'s rows are out_proj's channels, ``c``'s rows summed)
        rows = la.narrow(-1, 0, 1)
        cols = lb.narrow(-2, 0, 1)
        _label(
            tr,
            torch.full_like(rows, UNTRACKED) if ka else rows,
            torch.full_like(cols, UNTRACKED) if kb else cols,
            result,
        )
        return
    if tr.heads.splits and nd >= 3:
        tr.heads.follow(tr, la, lb)  # ``attn @ v``: v's heads go as the map's
    _label(tr, la.narrow(-1, 0, 1), lb.narrow(-2, 0, 1), result)


def _within_heads(tr: TraceState, la: torch.Tensor, lb: torch.Tensor, result) -> bool:
    """``attn @ v`` of cross-covariance attention (XCiT, EdgeNeXt's XCA), summed over ``v``'s
    channels within each head.

    ``attn = q @ k^T`` with q and k of shape ``(B, heads, head_dim, N)`` sums over the tokens: a
    map between one head's channel positions, labelled by its rows (q's). ``attn @ v`` then sums
    over ``v``'s positions of that head only; with whole heads that sum stays inside the unit a
    head removes, so the map's head and ``v``'s head go together. Returns false (the caller
    freezes) unless the map carries split channels, their heads go whole and every summed
    position of a slice of ``v`` belongs to one unit.
    """
    split_of = tr.heads.split_of
    if not any(e in split_of for e in torch.unique(la).tolist()):
        return False
    if tr.heads.attention(tr, la, lb) != "whole":
        return False
    roots = tr.sets.roots()[lb]
    if not bool((roots == roots.narrow(-2, 0, 1)).all()):
        return False
    tr.union(la.narrow(-1, 0, 1).narrow(-2, 0, 1), lb.narrow(-2, 0, 1).narrow(-1, 0, 1))
    _label(tr, la.narrow(-1, 0, 1), lb.narrow(-2, 0, 1), result)
    return True


def _label(tr: TraceState, rows: torch.Tensor, cols: torch.Tensor, result: torch.Tensor) -> None:
    rows, cols = torch.broadcast_tensors(rows, cols)
    tr.union(rows, cols)
    merged = torch.where(rows == UNTRACKED, cols, rows)
    tr.set_label(
        result,
        L.compress(merged.contiguous())
        if merged.dim() == result.dim()
        else L.untracked(result.dim()),
    )
