"""Observing feature maps during ranking passes, with hooks that are always removed.

:class:`FeatureObserver` attaches to each producing layer's anchor (see
:mod:`filterprune.graph.anchors`) and hands every observed feature map ``z`` (and, in backward,
its gradient) to a callback that reduces it to a per-channel statistic on the fly. Nothing but the
statistics is kept. Ranking passes leave parameters' ``.grad`` untouched and restore the model's
train/eval mode, even when the loss function raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .._modes import restore_training, training_flags
from .._progress import progress as show_progress
from ..errors import ConfigError, NonFiniteError
from ..graph.anchors import Anchor
from ..graph.specs import spec_for

Forward = Callable[[str, torch.Tensor, int], None]  # (module, z, channel_dim)


def per_channel(z: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Mean over every dimension except batch (0) and ``channel_dim``: ``(N, C)``."""
    channel_dim %= z.dim()
    if z.dim() == 2:
        return z
    z = z.movedim(channel_dim, 1)
    return z.reshape(z.shape[0], z.shape[1], -1).mean(2)


def channel_dot(z: torch.Tensor, g: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """``per_channel(z * g)`` without materialising the product: ``(N, C)``."""
    channel_dim %= z.dim()
    if z.dim() == 2:
        return z * g
    z = z.movedim(channel_dim, 1)
    g = g.movedim(channel_dim, 1)
    z = z.reshape(z.shape[0], z.shape[1], -1)
    g = g.reshape(g.shape[0], g.shape[1], -1)
    return torch.linalg.vecdot(z, g) / z.shape[2]


class _ActivationWatch(TorchFunctionMode):
    """Catches activation ops applied to watched tensors (functional activations have no hook)."""

    def __init__(self, observer: FeatureObserver) -> None:
        super().__init__()
        self.observer = observer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if args and isinstance(args[0], torch.Tensor):
            pending = self.observer._pending.pop(id(args[0]), None)
            if pending is not None:
                anchor, tensor = pending
                name = getattr(func, "__name__", "")
                if name == anchor.activation and isinstance(out, torch.Tensor):
                    self.observer._emit(anchor, out)
                else:  # the activation was skipped on this pass: observe the module output
                    self.observer._emit(anchor, tensor)
        return out


class FeatureObserver:
    """Calls ``on_feature(module_name, z, channel_dim)`` for each anchor on every forward."""

    def __init__(
        self,
        model: nn.Module,
        anchors: dict[str, Anchor],
        on_feature: Forward,
        *,
        inputs: tuple[str, ...] = (),
    ) -> None:
        """``inputs``: layers whose input is observed too, reported as ``"<name>#in"`` (the
        output projection of attention heads: each head's attention output)."""
        self.model = model
        self.anchors = anchors
        self.on_feature = on_feature
        self.inputs = inputs
        modules = dict(model.named_modules())
        self._dims = {n: spec_for(modules[n]).out_dim for n in anchors}
        self._watch: dict[str, list[Anchor]] = {}
        for a in anchors.values():
            self._watch.setdefault(a.watch, []).append(a)
        self._modules = modules
        self._pending: dict[int, tuple[Anchor, torch.Tensor]] = {}

    def _emit(self, anchor: Anchor, z: torch.Tensor) -> None:
        self.on_feature(anchor.module, z, self._dims[anchor.module])

    def _hook(self, anchors: list[Anchor]):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor):
                return
            for a in anchors:
                if a.activation is None:
                    self._emit(a, output)
                else:
                    self._pending[id(output)] = (a, output)

        return hook

    def _input_hook(self, name: str):
        dim = spec_for(self._modules[name]).in_dim

        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                self.on_feature(f"{name}#in", args[0], dim)

        return hook

    def __enter__(self) -> FeatureObserver:
        self._handles = []
        self._mode: _ActivationWatch | None = None
        try:
            for name, anchors in self._watch.items():
                module = self._modules[name]
                self._handles.append(module.register_forward_hook(self._hook(anchors)))
            for name in self.inputs:
                module = self._modules[name]
                self._handles.append(module.register_forward_pre_hook(self._input_hook(name)))
            if any(a.activation for a in self.anchors.values()):
                self._mode = _ActivationWatch(self)
                self._mode.__enter__()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pending.clear()
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        for handle in self._handles:
            handle.remove()
        self._handles = []


def run_passes(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None,
    step_fn: Callable[[nn.Module, Any], torch.Tensor] | None,
    observer: FeatureObserver,
    backward: bool,
    train_mode: bool = False,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    weight_grads: bool = True,
) -> int:
    """Forward (and backward) ``batches`` through ``model`` under ``observer``; returns the count.

    Gradients are taken with ``torch.autograd.grad`` so no parameter's ``.grad`` changes and no
    optimizer is involved. With ``weight_grads=False`` (criteria that need only the gradients of
    feature maps, which their tensor hooks receive) backward is taken towards the batch's
    floating-point inputs instead of the parameters: every layer between loss and input still
    passes its gradient back, but no weight gradient is computed, which saves about a third of
    the backward work. Batches given to ``step_fn``, or without a floating-point input, fall back
    to the parameters.
    """
    if loss_fn is None and step_fn is None and backward:
        raise ConfigError(
            "a gradient criterion needs loss_fn(outputs, targets) or step_fn(model, batch)"
        )
    was_training = training_flags(model)
    model.train(train_mode)
    params = [p for p in model.parameters() if p.requires_grad]
    seen = 0
    iterator: Iterable[Any] = show_progress(
        batches, enabled=progress, total=max_batches, desc="ranking"
    )
    wanted: list[torch.Tensor] = []
    try:
        with observer:
            for batch in iterator:
                if max_batches is not None and seen >= max_batches:
                    break
                batch = _to_device(batch, device)
                with torch.set_grad_enabled(backward):
                    if step_fn is not None:
                        loss = step_fn(model, batch)
                    else:
                        inputs, targets = batch
                        if backward and not weight_grads:
                            inputs, wanted = _grad_leaves(inputs)
                        outputs = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
                        loss = loss_fn(outputs, targets) if loss_fn is not None else None
                    if backward:
                        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                            raise ConfigError(
                                "the loss must be a scalar tensor; got "
                                f"{type(loss).__name__} {getattr(loss, 'shape', '')}"
                            )
                        if not torch.isfinite(loss):
                            raise NonFiniteError(
                                f"ranking loss is {loss.item()} at batch {seen}; check the data "
                                "and the model before pruning"
                            )
                        towards = wanted if step_fn is None and wanted else params
                        torch.autograd.grad(loss, towards, allow_unused=True)
                seen += 1
    finally:
        restore_training(was_training)
    if seen == 0:
        raise ConfigError("ranking needs at least one batch, but the batches iterable was empty")
    return seen


def _grad_leaves(inputs: Any) -> tuple[Any, list[torch.Tensor]]:
    """``inputs`` with each floating-point tensor made to carry a gradient, and those leaves.

    The model gets a clone of each leaf, not the leaf, so a forward that modifies its input in
    place (``x.sub_(mean)``) still runs.
    """
    leaves: list[torch.Tensor] = []

    def leaf(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            start = x.detach().requires_grad_(True)
            leaves.append(start)
            return start.clone()
        return x

    if isinstance(inputs, tuple):
        return tuple(leaf(x) for x in inputs), leaves
    return leaf(inputs), leaves


def _to_device(batch: Any, device: torch.device | str | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch
