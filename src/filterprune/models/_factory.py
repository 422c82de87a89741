"""A model factory from a name: a built-in model, or (only when trusted) an importable function.

``"vgg16_bn"`` builds a model of the zoo; a hub name (``"torchvision:resnet18"``) builds a model
of that library through the fixed table of :mod:`filterprune.models.hub`, never by importing the
text itself, so it counts as built-in. ``"mypkg.nets:build"`` imports ``mypkg.nets`` and calls
``build``: importing a module runs its code, so this form is refused unless the caller passes
``trust_code=True`` (the CLI's ``--trust-model-code``). A name read from a file (``model.json``)
is never trusted: filterprune only accepts built-in names from files, so a downloaded run folder
cannot make it run code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..errors import ConfigError, FilterpruneError
from .hub import HubError, create_hub_model, is_hub_name
from .registry import create_model, list_models

__all__ = ["UntrustedCodeError", "is_builtin", "model_factory"]


class UntrustedCodeError(FilterpruneError, PermissionError):
    """A model name would import and run code that was not explicitly trusted."""


def is_builtin(spec: str) -> bool:
    """Whether ``spec`` names a model of the zoo or a hub model (no code named by it runs)."""
    return spec in list_models() or is_hub_name(spec)


def model_factory(
    spec: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    trust_code: bool = False,
    option: str = "--model",
) -> Callable[[], nn.Module]:
    """A zero-argument factory for ``spec``: a built-in model name or ``MODULE:FUNCTION``.

    Args:
        spec: A built-in name (see :func:`list_models`) or ``"package.module:function"``.
        kwargs: Keyword arguments of the model function.
        trust_code: Allow ``MODULE:FUNCTION``, which imports the module (running its code) and
            calls the function. Only for code you trust; never for a name read from a file.
        option: How the caller names ``spec`` in error messages.

    Raises:
        UntrustedCodeError: ``spec`` is ``MODULE:FUNCTION`` and ``trust_code`` is false.
        ConfigError: Unknown name, import failure, or the function is not callable.
    """
    kwargs = dict(kwargs or {})
    if is_hub_name(spec):

        def factory(**kw: Any) -> nn.Module:
            try:
                return create_hub_model(spec, **kw)
            except HubError as exc:
                raise ConfigError(f"{option} {exc}") from None

    elif ":" in spec:
        if not trust_code:
            raise UntrustedCodeError(
                f"{option} {spec} would import module {spec.partition(':')[0]!r} and run its "
                "code; add --trust-model-code (Python: trust_code=True) if you trust it, or use "
                "a built-in model"
            )
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{option} {spec}: cannot import {module_name!r} ({exc})") from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise ConfigError(f"{option} {spec}: {module_name!r} has no callable {attr!r}")
    else:
        if not is_builtin(spec):
            raise ConfigError(
                f"{option} {spec}: unknown model; built-in models: {', '.join(list_models())}; "
                "or pass an importable factory as MODULE:FUNCTION with --trust-model-code"
            )

        def factory(**kw: Any) -> nn.Module:
            return create_model(spec, **kw)

    def build() -> nn.Module:
        try:
            model = factory(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{option} {spec} with model arguments {kwargs}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{option} {spec} returned {type(model).__name__}, not an nn.Module")
        return model

    return build
