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

__all__ = ["drop_train_caches", "restore_training", "training_flags", "training_mode"]


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


def drop_train_caches(model: nn.Module) -> None:
    """Let modules that override ``train`` drop what they cached for eval, flags unchanged.

    timm's LeViT, TinyViT, EfficientFormer and EfficientViT keep their attention bias gathered
    for eval in a dict that ``train(True)`` clears: after pruning, that cached tensor has the
    old head count. Each such module is switched to train mode and every flag put back.
    """
    own = [m for m in model.modules() if type(m).train is not nn.Module.train]
    if not own:
        return
    flags = training_flags(model)
    try:
        for m in own:
            m.train(True)
    finally:
        restore_training(flags)
