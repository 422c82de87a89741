"""Name -> constructor registry for the built-in model zoo.

Models register themselves with :func:`register_model` at import time; users build them by name
with :func:`create_model` and discover them with :func:`list_models`::

    from filterprune.models import create_model, list_models

    print(list_models())
    model = create_model("resnet18", num_classes=10, stem="cifar", width=0.25)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from .._registry import Registry
from ..errors import ConfigError, UnknownNameError
from .hub import create_hub_model, is_hub_name

__all__ = ["UnknownModelError", "create_model", "list_models", "register_model"]

F = TypeVar("F", bound=Callable[..., nn.Module])


class UnknownModelError(UnknownNameError):
    """Raised by :func:`create_model` for a name that no model registered.

    Subclasses both ``KeyError`` (lookup by name failed) and ``ValueError`` (bad argument value),
    so either can be caught.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes; show it as written.
        return str(self.args[0]) if self.args else ""


_MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model",
    "models",
    register_with="filterprune.models.register_model",
    error=UnknownModelError,
    invalid=ConfigError,
    hint="or name a model of torchvision or timm (torchvision:resnet18)",
)


def register_model(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Register a model factory under ``name``.

    Args:
        name: The public name, e.g. ``"resnet18"``. Must be unique across the zoo.
        override: Replace a factory already registered under ``name``.

    Returns:
        A decorator that records the factory and returns it unchanged.

    Raises:
        ValueError: If ``name`` is empty, or already registered and ``override`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register_model: name must be a non-empty string, got {name!r}.")

    def decorator(factory: F) -> F:
        return _MODELS.add(name, factory, override=override)

    return decorator


def list_models() -> list[str]:
    """Return the names of all registered models, sorted alphabetically."""
    return _MODELS.names()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: A name from :func:`list_models`, e.g. ``"vgg16_bn"``, or a hub name such as
            ``"torchvision:resnet18"`` or ``"timm:convnext_atto"`` (see
            :mod:`filterprune.models.hub`; the library must be installed).
        **kwargs: Keyword arguments forwarded to the model's constructor (``num_classes``,
            ``width``, ...; see each model's docstring).

    Returns:
        A freshly initialised model in training mode, on CPU, in float32; its
        ``filterprune_spec`` attribute holds ``name`` and ``kwargs`` (a run writes them to
        model.json).

    Raises:
        UnknownModelError: If ``name`` is not registered; the message lists the known names.
        HubError: For a hub name whose library is missing or does not know the model.
    """
    if is_hub_name(name):
        return create_hub_model(name, **kwargs)
    model = _MODELS.get(name)(**kwargs)
    # remembered so that a pruning run can write model.json (filterprune.loop.describe)
    model.filterprune_spec = {"model": name, "model_args": dict(kwargs)}
    return model
