"""The equivalence oracle, for tests and for users checking their own models.

A pruned model must compute exactly what the original computes when, in the original, the removed
channels are zeroed at the input of every channel-mixing layer (conv, linear). Shape checks alone
miss a wrong index mapping; this check does not.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from .graph.specs import spec_for
from .graph.tracer import prepare_inputs
from .plan import Plan


def masked_copy(original: nn.Module, plan: Plan) -> nn.Module:
    """A copy of ``original`` whose mixing layers see the removed input channels as zeros."""
    masked = copy.deepcopy(original)
    modules = dict(masked.named_modules())
    for name, removed in plan.removed_inputs.items():
        module = modules[name]
        dim = spec_for(module).in_dim
        index = torch.tensor(removed, dtype=torch.long)

        def zero(mod, args, dim=dim, index=index):
            x = args[0].clone()
            x.index_fill_(dim % x.dim(), index.to(x.device), 0.0)
            return (x, *args[1:])

        module.register_forward_pre_hook(zero)
    return masked


def max_difference(original: nn.Module, pruned: nn.Module, plan: Plan, inputs: Any) -> float:
    """Largest absolute difference between ``pruned`` and the masked ``original`` (eval mode)."""
    reference = masked_copy(original, plan).eval()
    pruned_mode = pruned.training
    pruned.eval()
    try:
        with torch.no_grad():
            args = tuple(x.detach() if torch.is_tensor(x) else x for x in prepare_inputs(inputs))
            want = tree_flatten(reference(*args))[0]
            got = tree_flatten(pruned(*args))[0]
    finally:
        pruned.train(pruned_mode)
    diff = 0.0
    for a, b in zip(want, got, strict=True):
        if a.shape != b.shape:
            raise AssertionError(f"output shape changed: {tuple(a.shape)} -> {tuple(b.shape)}")
        diff = max(diff, float((a - b).abs().max()) if a.numel() else 0.0)
    return diff


def assert_equivalent(
    original: nn.Module, pruned: nn.Module, plan: Plan, inputs: Any, *, atol: float = 1e-4
) -> None:
    """Raise ``AssertionError`` if ``pruned`` differs from the masked original by more than atol."""
    diff = max_difference(original, pruned, plan, inputs)
    if not diff <= atol:
        raise AssertionError(f"pruned model differs from the masked original by {diff:.3g}")


def randomize_norms(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Give norm layers non-trivial statistics and affine parameters, in place.

    Freshly initialised BatchNorms (mean 0, var 1, weight 1, bias 0) can hide index mistakes;
    use this before an equivalence check.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.running_mean is not None:
                uniform(m.running_mean, -0.5, 0.5)
                uniform(m.running_var, 0.5, 2.0)
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    uniform(m.weight, 0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    uniform(m.bias, -0.5, 0.5)
    return model
