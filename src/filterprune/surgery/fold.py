"""Fold a computed weight into a plain one: the opt-in way to prune weight-standardised models.

A layer that computes its weight from the stored tensors (see :mod:`filterprune.graph.computed`)
keeps the channels whose removal would change the kept weights; in a network made of such layers
(every NFNet) that is nearly every channel. :func:`fold_computed_weights` replaces each such
layer by its plain base layer holding the weight it applies now, so the model computes exactly
what it computed before and every channel prunes like a plain conv's. What changes is training
afterwards: the weight is no longer re-standardised (or re-normalised) at each step.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm, remove_spectral_norm
from torch.nn.utils.weight_norm import WeightNorm, remove_weight_norm
from torch.overrides import TorchFunctionMode

from ..graph.computed import computed_weight
from ..graph.specs import registered_type, spec_for

_WEIGHTED = {"conv1d", "conv2d", "conv3d", "linear"}


class _Weights(TorchFunctionMode):
    """Records the weight argument of every conv/linear call."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _WEIGHTED:
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if isinstance(weight, torch.Tensor):
                self.weights.append(weight)
        return func(*args, **kwargs)


def _probe_input(module: nn.Module, seed: int) -> torch.Tensor:
    param = next(itertools.chain(module.parameters(), module.buffers()))
    gen = torch.Generator().manual_seed(seed)
    if isinstance(module, nn.modules.conv._ConvNd):
        size = [
            d * (k - 1) + 1 + 3 * s
            for k, d, s in zip(module.kernel_size, module.dilation, module.stride, strict=True)
        ]
        shape = (2, module.in_channels, *size)
    else:
        shape = (2, module.in_features)
    return torch.randn(shape, generator=gen).to(param.device, param.dtype)


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def _fold_forward(module: nn.Module, base: type[nn.Module]) -> bool:
    """Turn a subclass with its own ``forward`` into ``base`` with the weight it applies."""
    xs = [_probe_input(module, seed) for seed in (0, 1)]
    mode = _Weights()
    with torch.no_grad(), mode:
        want = [module(x) for x in xs]
    shaped = [w for w in mode.weights if w.shape == module.weight.shape]
    if not shaped or any(not torch.equal(w, shaped[0]) for w in shaped):
        return False
    cls, weight = type(module), module.weight
    own = {n: t for n, t in itertools.chain(module._parameters.items(), module._buffers.items())}
    module.__class__ = base
    module.weight = nn.Parameter(shaped[0].detach().clone(), requires_grad=weight.requires_grad)
    extra = [n for n in own if n not in ("weight", "bias")]
    for n in extra:
        module._parameters.pop(n, None)
        module._buffers.pop(n, None)
    try:
        with torch.no_grad():
            same = all(_close(module(x), w) for x, w in zip(xs, want, strict=True))
    except Exception:  # noqa: BLE001 - the plain layer rejects what the subclass accepted
        same = False
    if not same:  # it does more than apply a weight (a padding of its own): leave it as it was
        module.__class__ = cls
        for n, t in own.items():
            (module._parameters if isinstance(t, nn.Parameter) or t is None else module._buffers)[
                n
            ] = t
    return same


def fold_computed_weights(model: nn.Module) -> list[str]:
    """Replace every layer that computes its weight by a plain layer applying that weight.

    In place. Parametrizations (``parametrizations.weight_norm``, ``spectral_norm``) are removed
    keeping the weight they compute; the legacy ``weight_norm``/``spectral_norm`` hooks likewise;
    a subclass of a conv or linear whose ``forward`` computes its weight (timm's
    ``ScaledStdConv2d``/``StdConv2d``) becomes its base class holding that weight (its extra
    tensors, such as a gain, are dropped), if the base layer then computes exactly what it did.
    Weights are taken as in eval mode. Call it before :func:`filterprune.analyze`/``prune``.

    Args:
        model: The model, changed in place.

    Returns:
        The names of the folded layers; layers that could not be folded stay as they were (their
        channels are then kept by the analysis, with a reason naming them).
    """
    was_training = model.training
    model.eval()
    folded = []
    try:
        for name, module in list(model.named_modules()):
            spec = spec_for(module)
            if spec is None or spec.kind != "mixing":
                continue
            base = registered_type(module)
            if computed_weight(module, base) is None:
                continue
            if parametrize.is_parametrized(module):
                for tensor in list(module.parametrizations):
                    parametrize.remove_parametrizations(module, tensor, leave_parametrized=True)
            for hook in list(module._forward_pre_hooks.values()):
                if isinstance(hook, WeightNorm):
                    remove_weight_norm(module, hook.name)
                elif isinstance(hook, SpectralNorm):
                    remove_spectral_norm(module, hook.name)
            if computed_weight(module, base) is None:
                folded.append(name)
            elif not (module._forward_pre_hooks or module._forward_hooks):
                if _fold_forward(module, base):
                    folded.append(name)
    finally:
        model.train(was_training)
    return folded
