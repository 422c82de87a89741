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
