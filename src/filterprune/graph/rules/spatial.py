"""Pooling, interpolation and padding: channels pass through, spatial sizes change."""

from __future__ import annotations

import math

import torch

from .. import labels as L
from .base import TraceState, _outputs, _unknown, rule

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
    if name in ("interpolate", "upsample") and isinstance(x, torch.Tensor) and x.dim() > 2:
        _param_resampled(tr, x, _outputs(out))
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


def meta_interpolate(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``F.interpolate`` of a ``meta`` tensor, by its output shape alone (or ``None``).

    On ``meta`` the bilinear and bicubic kernels run as Python decompositions, about 80 ms a call:
    a model upsampling 24 times a pass (CoaT, a detector's neck) spent most of its trace there.
    Only the shape matters on ``meta``; the output stays attached to the input's autograd graph.
    """
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or x.dim() < 3:
        return None
    size = kwargs.get("size", args[1] if len(args) > 1 else None)
    scale = kwargs.get("scale_factor", args[2] if len(args) > 2 else None)
    n = x.dim() - 2
    if size is not None:
        spatial = [size] * n if isinstance(size, int) else list(size)
    elif scale is not None:
        scales = [scale] * n if isinstance(scale, (int, float)) else list(scale)
        if len(scales) != n:
            return None
        spatial = [math.floor(s * f) for s, f in zip(x.shape[2:], scales, strict=True)]
    else:
        return None
    if len(spatial) != n or not all(isinstance(v, int) for v in spatial):
        return None
    out = torch.empty((*x.shape[:2], *spatial), dtype=x.dtype, device="meta")
    return out + x.sum() * 0 if x.requires_grad and torch.is_grad_enabled() else out


def _param_resampled(tr: TraceState, x: torch.Tensor, outs: list) -> None:
    """A position table resampled as ``(1, C, H, W)`` (timm's ``resample_abs_pos_embed`` for
    another input size): dimension 1 is still the parameter's axis, the others are not."""
    name = tr.params.get(id(x))
    origin = tr.param_origin.get(id(x))
    if name is None or origin is None or len(outs) != 1:
        return
    tr.params[id(outs[0])] = name
    tr.param_origin[id(outs[0])] = (-1, origin[1], *(-1,) * (x.dim() - 2))


def meta_batch_norm(args: tuple, kwargs: dict, *, attach: bool = True) -> torch.Tensor | None:
    """``F.batch_norm`` (or another of :data:`SAME_SHAPE_NORMS`) of a ``meta`` tensor: its
    input's shape (or ``None``).

    Its ``meta`` kernel is a Python decomposition too (about 7 ms a call): a BatchNorm subclass
    that calls ``F.batch_norm`` itself (timm's ``BatchNormAct2d``) ran it 482 times in
    GhostNet-V3's trace and probe. Inside a leaf module (``attach=False``) the output need not
    join the input's autograd graph (the tracer labels the leaf's outputs itself), which spares
    the two ``meta`` ops that would join it.
    """
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    out = torch.empty_like(x)
    if attach and x.requires_grad and torch.is_grad_enabled():
        return out + x.sum() * 0
    return out


def meta_norm(args: tuple, kwargs: dict, *, attach: bool = True) -> torch.Tensor | None:
    """``F.layer_norm``/``F.group_norm`` of a ``meta`` tensor: its input's shape, where the
    sizes fit (else ``None``: torch's kernel raises as on the model itself).

    Their ``meta`` kernels are Python decompositions too: ``F.layer_norm`` ran 100 times in
    caformer_s18's trace and probe, 0.7 s of its 7 s at 224 px.
    """
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor) or x.device.type != "meta":
        return None
    second = args[1] if len(args) > 1 else kwargs.get("normalized_shape", kwargs.get("num_groups"))
    if isinstance(second, int):  # group_norm's num_groups
        fits = x.dim() >= 2 and second > 0 and x.shape[1] % second == 0
    else:
        shape = tuple(second) if isinstance(second, (list, tuple, torch.Size)) else None
        fits = shape is not None and tuple(x.shape[x.dim() - len(shape) :]) == shape
    return meta_batch_norm((x,), {}, attach=attach) if fits else None


#: The ``meta`` norms the tracer makes from shapes alone, inside leaf modules too.
META_NORMS = {"batch_norm": meta_batch_norm, "layer_norm": meta_norm, "group_norm": meta_norm}

#: Ops whose ``meta`` result the tracer makes from shapes alone.
META_SHORTCUTS = {"interpolate": meta_interpolate, **META_NORMS}
