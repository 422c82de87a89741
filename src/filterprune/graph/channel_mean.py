"""Norms whose statistic is a mean over the channels, kept exact by rescaling after pruning.

GRN (ConvNeXt-V2, Woo et al. 2023, https://arxiv.org/abs/2301.00808)::

    y = x + b + w * x * g / (mean_c(g) + eps)      g: the L2 norm of each channel over space

and an RMS norm over the channels (``y = w * x / sqrt(mean_c(x^2) + eps)``) read every channel
through one mean. Against the original whose removed channels are zero (the oracle), that mean is
``S / C`` over ``C`` channels; after pruning to ``C'`` it is ``S / C'``, larger by ``r = C / C'``
whatever the input. Scaling ``eps`` by ``r`` too makes ``mean + eps`` exactly ``r`` times the
original's (GRN), or ``mean + eps`` under the root ``r`` times, the root ``sqrt(r)`` times (RMS);
scaling ``w`` by ``r`` (GRN) or ``sqrt(r)`` (RMS) gives back the original output of every kept
channel. Exact, not approximate, which no zeroing gives: the module is a per-channel leaf whose
surgery ends with :meth:`ChannelMeanNormSpec.rescale`.

It needs ``eps`` as an attribute and ``w`` as a parameter. A literal ``eps`` in the code (the
ConvNeXt-V2 authors' ``Gx.mean(...) + 1e-6``) cannot follow, and the ratio
``(S/C' + eps) / (S/C + eps)`` depends on the input: there the trace keeps the channels, naming
the ``mean`` and its line. An RMS norm without ``w`` has nothing to scale: opaque.

Third-party layers are found by their qualified class name (:data:`KNOWN`), so nothing is imported;
other layers of the same form register the spec with :func:`filterprune.register_layer`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .specs import NAMED_SPECS, LayerSpec, OpaqueSpec, PerChannelSpec


class ChannelMeanNormSpec(PerChannelSpec):
    """A per-channel norm over a channel mean (see the module docstring).

    Args:
        params: The per-channel tensors (axis 0), sliced with the channels.
        power: ``w`` is scaled by ``r ** power``: 1 for a mean of norms (GRN), 0.5 for a mean
            of squares under a square root (RMS).
        channel_dim: The attribute holding the activation's channel dimension (timm's GRN:
            ``channel_dim``, -1 channels last, 1 channels first), or ``None`` for ``dim``.
        dim: The channel dimension where ``channel_dim`` is ``None``.
        shape_attr: A ``normalized_shape``-style tuple attribute to set to ``(C',)``.
    """

    def __init__(
        self,
        params: tuple[str, ...],
        *,
        power: float,
        channel_dim: str | None = None,
        dim: int = 1,
        shape_attr: str | None = None,
    ) -> None:
        super().__init__(params, None, in_dim=dim)
        self.power, self.channel_dim, self.shape_attr = power, channel_dim, shape_attr

    def for_module(self, module: nn.Module) -> LayerSpec | None:
        weight = getattr(module, "weight", None)
        eps = getattr(module, "eps", None)
        if not isinstance(weight, nn.Parameter) or not isinstance(eps, (int, float)):
            return OpaqueSpec()  # nothing to rescale: every channel it reads is kept
        if self.channel_dim is None:
            return self
        dim = getattr(module, self.channel_dim)
        spec = ChannelMeanNormSpec(
            self.params, power=self.power, dim=dim, shape_attr=self.shape_attr
        )
        return spec if dim in (1, -1) else OpaqueSpec()

    def channels(self, module: nn.Module) -> tuple[int, int]:
        n = module.weight.numel()
        return n, n

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        if self.shape_attr is not None:
            setattr(module, self.shape_attr, (n_out,))

    def rescale(self, module: nn.Module, before: int, after: int) -> None:
        ratio = before / after
        module.eps = module.eps * ratio
        with torch.no_grad():
            module.weight.mul_(math.pow(ratio, self.power))


GRN = ChannelMeanNormSpec(("weight", "bias"), power=1.0, channel_dim="channel_dim")
RMS_2D = ChannelMeanNormSpec(("weight",), power=0.5, dim=1, shape_attr="normalized_shape")

#: Qualified class name -> spec, for layers of libraries filterprune does not import.
KNOWN: dict[str, LayerSpec] = {
    "timm.layers.grn.GlobalResponseNorm": GRN,
    "timm.layers.norm.RmsNorm2d": RMS_2D,
    "timm.layers.norm.RmsNorm2dFp32": RMS_2D,
}
NAMED_SPECS.update(KNOWN)
