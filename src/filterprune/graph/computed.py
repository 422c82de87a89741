"""Mixing layers whose effective weight is computed from the stored tensors.

Weight standardisation (NFNet's ``ScaledStdConv2d``, BiT's ``StdConv2d``: each filter's weight
minus its mean over the input channels and kernel, over its standard deviation), weight norm
(Salimans & Kingma 2016, https://arxiv.org/abs/1602.07868: ``g * v / ||v||``), spectral norm
(Miyato et al. 2018, https://arxiv.org/abs/1802.05957: ``W / sigma(W)``) or any forward of a
layer subclass: the layer does not apply the weight it stores. Removing a channel can then change
the weights of the channels kept, and a pruned model is no longer the original with those
channels zeroed. This module tells such layers apart (:func:`computed_weight`) and slices the
stored tensors of the legacy hook-based ``torch.nn.utils.weight_norm``
(:class:`LegacyWeightNormSpec`). Which channels stay exact is measured by pruning a copy of each
such layer (:mod:`filterprune.layer_probe`).
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize

from .specs import SPEC_WRAPPERS, ChannelParam, LayerSpec, WrapperSpec, weight_norm_hooks


def _hooks(module: nn.Module) -> list[object]:
    return [*module._forward_pre_hooks.values(), *module._forward_hooks.values()]


_OVERRIDDEN = ("forward", "_conv_forward")  # where a subclass may compute the weight it applies


def computed_weight(module: nn.Module, base: type[nn.Module] | None = None) -> str | None:
    """How ``module`` may compute the weight it applies, or ``None`` if it applies its tensors.

    Args:
        module: A leaf module of a known layer type.
        base: The registered type it is looked up as; a subclass overriding its ``forward`` (or
            a conv's ``_conv_forward``) is reported.

    Returns:
        A phrase naming the mechanism (a parametrization, a hook, an overriding method).
    """
    if parametrize.is_parametrized(module):
        kinds = {
            f"{type(p).__name__} on '{name}'"
            for name, plist in module.parametrizations.items()
            for p in plist
        }
        return f"parametrization {', '.join(sorted(kinds))}"
    hooks = _hooks(module)
    if hooks:
        return f"forward hook {', '.join(sorted({type(h).__name__ for h in hooks}))}"
    if base is not None and type(module) is not base:
        for method in _OVERRIDDEN:
            own = getattr(type(module), method, None)
            if own is not None and own is not getattr(base, method, None):
                return own.__qualname__
    return None


class LegacyWeightNormSpec(WrapperSpec):
    """A layer under the legacy ``torch.nn.utils.weight_norm``: ``weight`` is ``g * v / ||v||``.

    ``weight`` is recomputed from ``weight_g`` and ``weight_v`` by a forward pre-hook; those two
    are sliced along the weight's channel axes (``weight_g`` only along an axis it has, e.g. the
    filters for the default ``dim=0``) and ``weight`` is recomputed after surgery. The effective
    ``weight`` stays first in :meth:`out_params`, so criteria score what the layer applies.
    """

    def __init__(self, base: LayerSpec, module: nn.Module) -> None:
        super().__init__(base)
        self.names = {h.name for h in weight_norm_hooks(module)}
        self.unknown = list(getattr(base, "unknown", []))

    def _stored(self, module: nn.Module, params: list[ChannelParam]) -> list[ChannelParam]:
        out = list(params)
        for p in params:
            if p.name not in self.names:
                continue
            applied = getattr(module, p.name)
            for suffix in ("_v", "_g"):
                t = getattr(module, p.name + suffix)
                if t.dim() == applied.dim() and t.shape[p.axis] == applied.shape[p.axis] > 1:
                    out.append(ChannelParam(p.name + suffix, p.axis))
        return out

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return self._stored(module, self.base.out_params(module))

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        return self._stored(module, self.base.in_params(module))

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        self.base.resize(module, n_in, n_out)
        for hook in weight_norm_hooks(module):
            setattr(module, hook.name, hook.compute_weight(module))


def _legacy_weight_norm(spec: LayerSpec, module: nn.Module) -> LayerSpec:
    if spec.kind == "mixing" and weight_norm_hooks(module):
        return LegacyWeightNormSpec(spec, module)
    return spec


SPEC_WRAPPERS.append(_legacy_weight_norm)
