"""Which model names are safe to build from a file, and the error for those that are not.

``"vgg16_bn"`` names a model of the zoo; a hub name (``"torchvision:resnet18"``) builds a model
of that library through the fixed table of :mod:`filterprune.models.hub`, never by importing the
text itself, so it counts as built-in. ``"mypkg.nets:build"`` would import ``mypkg.nets``, which
runs its code: :func:`filterprune.recipes.model_factory` refuses it unless the caller passes
``trust_code=True`` (the CLI's ``--trust-model-code``), and a name read from ``model.json`` is
used only on that explicit opt-in.
"""

from __future__ import annotations

from ..errors import FilterpruneError
from .hub import is_hub_name
from .registry import list_models

__all__ = ["UntrustedCodeError", "is_builtin"]


class UntrustedCodeError(FilterpruneError, PermissionError):
    """A model name would import and run code that was not explicitly trusted."""


def is_builtin(spec: str) -> bool:
    """Whether ``spec`` names a model of the zoo or a hub model (no code named by it runs)."""
    return spec in list_models() or is_hub_name(spec)
