"""The equivalence oracle, for tests and for users checking their own models.

A pruned model must compute exactly what the original computes when, in the original, the removed
channels are zeroed at the input of every channel-mixing layer (conv, linear). Shape checks alone
miss a wrong index mapping; this check does not.

Layers that normalise channels *together* (LayerNorm over channels, GroupNorm, ConvNeXt's
channels-first LayerNorm) make that impossible by construction: removing a channel changes the
statistics of the others. With ``restrict_norms=True`` the reference also computes those
statistics over the kept channels only (written here with ``F.layer_norm``/``F.group_norm`` on
the kept slice, independently of the surgery), so such models are verified exactly too. A layer
whose weight is computed over its input channels (NFNet's weight-standardised conv, weight norm)
gets no such allowance: zeroing is the reference, and filterprune keeps those inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ._copy import deepcopy_module
from ._modes import restore_training, training_flags
from .graph.specs import channel_axis, spec_for
from .graph.tracer import prepare_inputs
from .plan import Plan


def masked_copy(
    original: nn.Module, plan: Plan, *, restrict_norms: bool = False, mask_outputs: bool = False
) -> nn.Module:
    """A copy of ``original`` whose mixing layers see the removed input channels as zeros.

    With ``restrict_norms``, LayerNorm and GroupNorm layers (and their subclasses) named by the
    plan take their statistics over the kept channels only (see the module docstring). With
    ``mask_outputs``, mixing layers also give their removed output channels as zeros: needed
    where channels meet in something other than a layer's input, as the positions of q and k
    in the product of attention heads that all shrink alike (``heads="dims"``).
    """
    masked = deepcopy_module(original)
    modules = dict(masked.named_modules())
    for name, removed in plan.removed_outputs.items() if mask_outputs else ():
        module = modules.get(name)
        spec = spec_for(module) if module is not None else None
        if spec is None or spec.kind != "mixing":
            continue

        gone = torch.tensor(removed, dtype=torch.long)

        def zero_out(mod, args, out, dim=spec.out_dim, index=gone):
            return out.index_fill(dim % out.dim(), index.to(out.device), 0.0)

        module.register_forward_hook(zero_out)
    functional: dict[int, tuple[int, torch.Tensor]] = {}
    for name, removed in plan.removed_inputs.items():
        module = modules[name]
        spec = spec_for(module)
        dim = spec.in_dim
        index = torch.tensor(removed, dtype=torch.long)

        def zero(mod, args, dim=dim, index=index):
            x = args[0].clone()
            x.index_fill_(dim % x.dim(), index.to(x.device), 0.0)
            return (x, *args[1:])

        module.register_forward_pre_hook(zero)
        if isinstance(getattr(module, "weight", None), torch.Tensor):
            functional[id(module.weight)] = (dim, index)
    if functional:  # ``F.linear(x, self.qkv.weight, bias)``: the layer's weight, not its call
        _mask_functional_calls(masked, functional)
    if restrict_norms:
        return _RestrictedNorms(masked, plan)
    return masked


class _LinearMask(TorchFunctionMode):
    """Zeroes the removed inputs of ``F.linear`` called with a masked layer's own weight."""

    def __init__(self, masks: dict[int, tuple[int, torch.Tensor]]) -> None:
        super().__init__()
        self.masks = masks

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        mask = self.masks.get(id(weight)) if func is F.linear else None
        if mask is not None:
            dim, index = mask
            x = args[0].clone()
            x.index_fill_(dim % x.dim(), index.to(x.device), 0.0)
            args = (x, *args[1:])
        return func(*args, **kwargs)


def _mask_functional_calls(masked: nn.Module, masks: dict[int, tuple[int, torch.Tensor]]) -> None:
    inner = masked.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        with _LinearMask(masks):
            return inner(*args, **kwargs)

    masked.forward = forward


class _NormMode(TorchFunctionMode):
    """Computes ``F.layer_norm``/``F.group_norm`` of the planned norm layers on kept channels."""

    def __init__(self, kept: dict[nn.Module, torch.Tensor]) -> None:
        super().__init__()
        self.kept = kept
        self.active: list[nn.Module] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        keep = self.kept.get(self.active[-1]) if self.active else None
        if keep is None or func not in (F.layer_norm, F.group_norm):
            return func(*args, **kwargs)
        out = func(*args, **kwargs).clone()
        x = args[0]
        if func is F.layer_norm:
            shape, weight, bias, eps = _norm_args(args, kwargs, "normalized_shape")
            if len(shape) != 1:
                return out
            idx = keep.to(x.device)
            w = None if weight is None else weight[idx]
            b = None if bias is None else bias[idx]
            out[..., idx] = func(x[..., idx], (len(idx),), w, b, eps)
            return out
        groups, weight, bias, eps = _norm_args(args, kwargs, "num_groups")
        per = x.shape[1] // groups
        for g in range(groups):
            idx = keep[(keep >= g * per) & (keep < (g + 1) * per)].to(x.device)
            if len(idx):
                w = None if weight is None else weight[idx]
                b = None if bias is None else bias[idx]
                out[:, idx] = func(x[:, idx], 1, w, b, eps)
        return out


def _norm_args(args: tuple, kwargs: dict, first: str) -> tuple:
    names = [first, "weight", "bias", "eps"]
    defaults = {"weight": None, "bias": None, "eps": 1e-5}
    values = [
        args[i + 1] if len(args) > i + 1 else kwargs.get(n, defaults.get(n))
        for i, n in enumerate(names)
    ]
    return tuple(values)


class _RestrictedNorms(nn.Module):
    """The masked copy, run with its planned LayerNorm/GroupNorm layers restricted to kept channels."""

    def __init__(self, masked: nn.Module, plan: Plan) -> None:
        super().__init__()
        self.masked = masked
        modules = dict(masked.named_modules())
        self.kept: dict[nn.Module, torch.Tensor] = {}
        for name, removed in plan.removed_outputs.items():
            module = modules.get(name)
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                total = plan.channels[name][1]
                gone = set(removed)
                self.kept[module] = torch.tensor([i for i in range(total) if i not in gone])
        self.mode = _NormMode(self.kept)
        active = self.mode.active

        def enter(module: nn.Module, args: Any) -> None:
            active.append(module)

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            active.pop()

        for module in self.kept:
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.mode:
            return self.masked(*args, **kwargs)


def max_difference(
    original: nn.Module,
    pruned: nn.Module,
    plan: Plan,
    inputs: Any,
    *,
    restrict_norms: bool = False,
    mask_outputs: bool = False,
) -> float:
    """Largest absolute difference between ``pruned`` and the masked ``original`` (eval mode).

    ``restrict_norms``, ``mask_outputs``: see :func:`masked_copy`.
    """
    reference = masked_copy(
        original, plan, restrict_norms=restrict_norms, mask_outputs=mask_outputs
    ).eval()
    pruned_mode = training_flags(pruned)
    pruned.eval()
    try:
        with torch.no_grad():
            args = tuple(x.detach() if torch.is_tensor(x) else x for x in prepare_inputs(inputs))
            want = tree_flatten(reference(*args))[0]
            got = tree_flatten(pruned(*args))[0]
    finally:
        restore_training(pruned_mode)
    diff = 0.0
    for a, b in zip(want, got, strict=True):
        if a.shape != b.shape:
            raise AssertionError(f"output shape changed: {tuple(a.shape)} -> {tuple(b.shape)}")
        diff = max(diff, float((a - b).abs().max()) if a.numel() else 0.0)
    return diff


def assert_equivalent(
    original: nn.Module,
    pruned: nn.Module,
    plan: Plan,
    inputs: Any,
    *,
    atol: float = 1e-4,
    restrict_norms: bool = False,
) -> None:
    """Raise ``AssertionError`` if ``pruned`` differs from the masked original by more than atol.

    Args:
        restrict_norms: Compare with a reference whose LayerNorm/GroupNorm statistics cover the
            kept channels only (for models that normalise channels together; see
            :func:`masked_copy`).
    """
    diff = max_difference(original, pruned, plan, inputs, restrict_norms=restrict_norms)
    if not diff <= atol:
        raise AssertionError(f"pruned model differs from the masked original by {diff:.3g}")


def randomize_norms(model: nn.Module, *, seed: int = 0, statistics: bool = True) -> nn.Module:
    """Give norm layers non-trivial affine parameters (and statistics), in place.

    Freshly initialised BatchNorms (mean 0, var 1, weight 1, bias 0) and layer scales (ConvNeXt's
    ``1e-6``, GRN's zeros) can hide index mistakes; use this before an equivalence check.

    Args:
        model: The model, changed in place.
        seed: Seed of the random values.
        statistics: Also draw BatchNorm running statistics (off after
            :func:`calibrate_batchnorm`, whose statistics keep deep models' outputs alive).

    Besides norm layers, every parameter held directly by a module that is not a known layer
    (a layer scale, GRN's gamma and beta) is drawn from ``[0.5, 1.5]``.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                if statistics:
                    uniform(m.running_mean, -0.5, 0.5)
                    uniform(m.running_var, 0.5, 2.0)
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    uniform(m.weight, 0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    uniform(m.bias, -0.5, 0.5)
            elif spec_for(m) is None:
                for p in m.parameters(recurse=False):
                    if p.is_floating_point() and channel_axis(p) is not None:
                        uniform(p, 0.5, 1.5)
    return model


def calibrate_batchnorm(model: nn.Module, batches: Iterable[Any]) -> nn.Module:
    """Set BatchNorm running statistics to the mean over ``batches``, in place (eval mode after).

    Random weights with BatchNorm's default statistics (mean 0, var 1) make deep networks' outputs
    vanish or explode; statistics measured on a few batches keep them in range, so an equivalence
    check has signal. Each batch is a tensor or a tuple of positional inputs.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    try:
        with torch.no_grad():
            for batch in batches:
                model(*(batch if isinstance(batch, tuple) else (batch,)))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return model


def output_change(model: nn.Module, first: Any, second: Any) -> float:
    """How much ``model``'s outputs change between two inputs, relative to their size.

    An oracle comparing outputs is only as strong as this: near 0, the output ignores its input.
    """
    model.eval()
    with torch.no_grad():
        a = tree_flatten(model(*(first if isinstance(first, tuple) else (first,))))[0]
        b = tree_flatten(model(*(second if isinstance(second, tuple) else (second,))))[0]
    num = max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))
    den = max(float(x.abs().max()) for x in a)
    return num / den if den else 0.0
