"""Parameter and multiply-accumulate (MAC) counts, measured with ``FlopCounterMode``.

``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the operators it knows
(convolutions, matmul/linear, batched matmul, attention): one multiply-accumulate is two FLOPs, so
``macs = flops // 2``. Element-wise work (bias, BatchNorm, activations, pooling) is not counted;
this matches the MAC convention of pruning papers. Counts are for the batch in ``example_inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from filterprune.measure._forward import (
    ExampleInputs,
    as_input_tuple,
    eval_mode,
    model_device,
    to_device,
)

__all__ = ["Counts", "count", "count_params", "per_module_macs"]


@dataclass(frozen=True)
class Counts:
    """Size and compute of a model for one input batch.

    Attributes:
        params: Number of parameter elements (shared parameters counted once).
        macs: Multiply-accumulates of one forward pass on the example batch.
    """

    params: int
    macs: int

    @property
    def flops(self) -> int:
        """Floating point operations, ``2 * macs``."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, int]:
        """Plain dict with ``params``, ``macs`` and ``flops`` (for JSON)."""
        return {"params": self.params, "macs": self.macs, "flops": self.flops}


def count_params(model: nn.Module) -> int:
    """Number of parameter elements of ``model``; a parameter shared by two modules counts once."""
    return sum(p.numel() for p in model.parameters())


def _run_counter(model: nn.Module, example_inputs: ExampleInputs) -> FlopCounterMode:
    inputs = to_device(as_input_tuple(example_inputs), model_device(model))
    counter = FlopCounterMode(display=False)
    # FlopCounterMode's module tracker hooks every module input that requires grad; a view of a
    # parameter made under no_grad (PiT's ``cls_token.expand(...)`` passed on in a tuple)
    # requires grad without a grad function and fails it, so no parameter requires grad here
    frozen = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(False)
        with eval_mode(model), torch.no_grad(), counter:
            model(*inputs)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return counter


def count(model: nn.Module, example_inputs: ExampleInputs) -> Counts:
    """Count parameters and MACs of one forward pass.

    The model runs once in eval mode under ``torch.no_grad``; its training flags are restored.

    Args:
        model: The network to measure.
        example_inputs: A tensor, e.g. of shape ``(N, C, H, W)``, or a tuple of tensors passed as
            positional arguments. They are moved to the model's device.

    Returns:
        The counts; MACs are for the whole batch ``N`` of ``example_inputs``.
    """
    counter = _run_counter(model, example_inputs)
    return Counts(params=count_params(model), macs=counter.get_total_flops() // 2)


def per_module_macs(model: nn.Module, example_inputs: ExampleInputs) -> dict[str, int]:
    """MACs of each leaf module (a module without children), keyed by its qualified name.

    Work done outside leaf modules (functional calls in a parent's ``forward``) is in the total
    of :func:`count` but in no entry here. A leaf module called twice has its MACs summed.

    Args:
        model: The network to measure.
        example_inputs: A tensor or tuple of tensors, as for :func:`count`.

    Returns:
        ``{name: macs}`` for every leaf module in ``model.named_modules()`` order; leaves without
        counted operators (activations, BatchNorm, ...) map to 0. A model without children is
        reported under the name ``""``.
    """
    counter = _run_counter(model, example_inputs)
    # FlopCounterMode names the root by its class name and children "<Root>.<qualified name>".
    root = type(model).__name__
    flops_by_name: dict[str, int] = {}
    for tracked, by_op in counter.get_flop_counts().items():
        if tracked == root:
            name = ""
        elif tracked.startswith(root + "."):
            name = tracked[len(root) + 1 :]
        else:
            continue
        flops_by_name[name] = sum(by_op.values())
    return {
        name: flops_by_name.get(name, 0) // 2
        for name, module in model.named_modules()
        if next(module.children(), None) is None
    }
