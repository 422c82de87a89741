"""Private helpers shared by the report modules: input normalisation, eval mode, output flattening."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

ExampleInputs = torch.Tensor | tuple[torch.Tensor, ...]


def as_input_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """Return ``example_inputs`` as a tuple of tensors, or raise a TypeError naming the bad type."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, Sequence) and not isinstance(example_inputs, str):
        items = tuple(example_inputs)
        bad = [type(item).__name__ for item in items if not isinstance(item, torch.Tensor)]
        if not items or bad:
            raise TypeError(
                "example_inputs must be a tensor or a non-empty tuple of tensors; "
                f"got a sequence with element types {bad or '[] (empty)'}"
            )
        return items
    raise TypeError(
        f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}"
    )


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a model without tensors)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(inputs: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Move every input to ``device`` (no copy when already there)."""
    return tuple(t.to(device) for t in inputs)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each submodule's training flag after."""
    flags = {name: module.training for name, module in model.named_modules()}
    model.eval()
    try:
        yield model
    finally:
        for name, module in model.named_modules():
            module.training = flags.get(name, module.training)


def flatten_tensors(output: Any) -> list[torch.Tensor]:
    """Flatten a model output (tensor, or nested tuple/list/dict of tensors) into a list."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for value in output.values() for t in flatten_tensors(value)]
    if isinstance(output, Sequence) and not isinstance(output, str):
        return [t for value in output for t in flatten_tensors(value)]
    return []


def max_abs_diff(reference: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> float:
    """Largest absolute element difference between two equally long lists of tensors.

    Returns ``inf`` when the lists differ in length or a pair differs in shape.
    """
    if len(reference) != len(other):
        return float("inf")
    worst = 0.0
    for ref, out in zip(reference, other, strict=True):
        ref = ref.detach().to("cpu", torch.float64)
        out = torch.as_tensor(out).detach().to("cpu", torch.float64)
        if ref.shape != out.shape:
            return float("inf")
        if ref.numel():
            worst = max(worst, (ref - out).abs().max().item())
    return worst
