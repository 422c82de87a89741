"""Reductions (mean, sum, max, norm, ...) and ops along one dimension (softmax, cumsum)."""

from __future__ import annotations

import torch

from .. import labels as L
from ..elements import UNTRACKED
from .base import TraceState, _outputs, rule
from .elementwise import _elementwise

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
