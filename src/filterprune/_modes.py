"""Save and restore the train/eval flag of every module of a model, not only the top one.

``model.train(was_training)`` sets *every* submodule to the top-level flag, so a model whose user
kept one BatchNorm in eval mode inside a training model (frozen statistics, a common finetuning
recipe) would come back with that BatchNorm training. Whatever filterprune switches to eval or
train for a while (tracing, ranking, counting, evaluating) is put back module by module.

This module is on the ground floor: it imports nothing of filterprune.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["restore_training", "training_flags", "training_mode"]


def training_flags(model: nn.Module) -> dict[nn.Module, bool]:
    """Every submodule's ``training`` flag (``model`` included), keyed by the module itself."""
    return {m: m.training for m in model.modules()}


def restore_training(flags: dict[nn.Module, bool]) -> None:
    """Put back the flags :func:`training_flags` saved (modules added since keep theirs)."""
    for module, flag in flags.items():
        module.training = flag


@contextlib.contextmanager
def training_mode(model: nn.Module, mode: bool) -> Iterator[nn.Module]:
    """``model.train(mode)`` for the block; every module's own flag is restored after it."""
    flags = training_flags(model)
    model.train(mode)
    try:
        yield model
    finally:
        restore_training(flags)
