"""Attention: ``F.scaled_dot_product_attention`` and the head-splitting product ``q @ k^T``.

A head is one unit (see :mod:`..heads`): its q, k and v channels and the output projection's
input columns go together, which leaves every other head exactly as it was. The product over the
head size, ``q @ k^T``, merges the positions of q and k it multiplies together; the attention
map is labelled by its head, so ``attn @ v`` (see :mod:`.matmul`) joins v's head to it.
"""

from __future__ import annotations

import torch

from .. import labels as L
from .base import TraceState, _unknown, rule
from .elementwise import _label_params

_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _arg(args: tuple, kwargs: dict, i: int, default=None):
    name = _SDPA_ARGS[i]
    return args[i] if len(args) > i else kwargs.get(name, default)


def heads_aligned(lab: torch.Tensor, heads: int, nd: int) -> torch.Tensor:
    """``lab`` with its head dimension (``-3``) repeated to ``heads`` (grouped-query attention:
    query head ``h`` uses key/value head ``h // (heads / kv_heads)``)."""
    lab = L.align(lab, nd)
    n = lab.shape[-3] if nd >= 3 else 1
    if nd < 3 or n in (1, heads) or heads % n:
        return lab
    return lab.repeat_interleave(heads // n, dim=-3)


def _join_mask(
    tr: TraceState, name: str, mask: object, lq: torch.Tensor, nd: int, whole: bool
) -> None:
    """A float ``attn_mask`` is added to the attention map: where it varies by head (BEiT's
    relative-position bias, ``(1, heads, N, N)``), its head ``h`` goes with head ``h``."""
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point() or nd < 3:
        return
    if mask.dim() > nd:
        return
    heads = lq.narrow(-1, 0, 1).narrow(-2, 0, 1)
    shape = (1,) * (nd - mask.dim()) + tuple(mask.shape)
    labs = [L.align(tr.label(mask), nd), heads]
    _label_params(tr, [mask, None], labs, [shape, tuple(heads.shape)])  # a table's view
    lm = labs[0]
    if not L.varying_dims(lm):
        if shape[nd - 3] > 1:  # a mask of fixed size, per head: the head count stays
            tr.freeze(lq, tr.reason(f"op '{name}'", "its mask has a fixed number of heads"))
        return
    if whole and not {nd - 2, nd - 1} & set(L.varying_dims(lm)):
        tr.union(lm, heads)
        return
    tr.freeze(lm, tr.reason(f"op '{name}'", "its mask varies where the heads cannot follow"))


@rule("scaled_dot_product_attention")
def _sdpa(tr: TraceState, name: str, func, args, kwargs, out) -> None:
    q, k, v = (_arg(args, kwargs, i) for i in range(3))
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v, out)) or q.dim() < 2:
        _unknown(tr, name, func, args, kwargs, out)
        return
    nd = out.dim()
    lq, lk, lv = (L.align(tr.label(t), nd) for t in (q, k, v))
    tokens = nd - 2
    if any(tokens in L.varying_dims(lab) for lab in (lq, lk, lv)):
        _unknown(tr, name, func, args, kwargs, out)  # channels along the sequence: not attention
        return
    heads = q.shape[-3] if nd >= 3 else 1
    lk, lv = heads_aligned(lk, heads, nd), heads_aligned(lv, heads, nd)
    mode = tr.heads.attention(tr, lq, lk, lv)
    summed = [lab for lab in (lq, lk) if nd - 1 in L.varying_dims(lab)]
    shrink = mode == "dims" and tr.heads.mode == "dims"  # asked for: every head loses alike
    if mode == "whole" and heads > 1 and k.dim() >= 3 and k.shape[-3] == v.shape[-3] == 1:
        _multi_query(tr, name, lq, lk, lv, out)
        return
    if mode == "whole":
        tr.union(lq, lk)  # q's position d meets k's position d, head by head
        tr.union(lq.narrow(-1, 0, 1), lv.narrow(-1, 0, 1))  # and v's head goes with them
        if _arg(args, kwargs, 6) is None:
            tr.heads.keep_size(
                lq,
                -1,
                tr.reason(
                    f"op '{name}'", "its default scale 1/sqrt(head size) changes if it shrinks"
                ),
            )
    elif shrink and _arg(args, kwargs, 6) is not None:
        tr.union(lq, lk)  # the same positions of q and k leave every head
    elif summed:
        why = (
            "its default scale 1/sqrt(head size) changes if the heads shrink"
            if shrink
            else "it sums products over these channels and no head count was found to remove "
            "whole heads"
        )
        reason = tr.reason(f"op '{name}'", why)
        for lab in summed:
            tr.freeze(lab, reason)
    _join_mask(tr, name, _arg(args, kwargs, 3), lq, nd, mode == "whole")
    result = lv
    if mode != "whole" and not shrink:  # heads not found: only v's own columns pass
        batch = [d for d in L.varying_dims(lv) if d < nd - 2]
        if batch:
            tr.freeze(lv, tr.reason(f"op '{name}'", "its heads were not found"))
            result = L.untracked(nd)
    tr.set_label(out, result)


def _multi_query(tr: TraceState, name: str, lq, lk, lv, out) -> None:
    """Multi-query attention (MobileNetV4's ``MultiQueryAttention2d``): one key/value head for
    every query head. A query head goes alone, with its output columns; the shared k and v keep
    their size (every head's product and output use each of their positions)."""
    reason = tr.reason(
        f"op '{name}'", "its key and value are shared by every query head (multi-query "
        "attention): their head size stays"
    )  # fmt: skip
    for lab in (lk, lv):
        tr.freeze(lab, reason)
    tr.set_label(out, L.compress(lq.narrow(-1, 0, 1).expand(*out.shape).contiguous()))
