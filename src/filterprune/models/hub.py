"""Models of other libraries by name: ``torchvision:resnet18``, ``timm:convnext_atto``.

A hub name is ``LIBRARY:MODEL``. The library part is looked up in a fixed table (:data:`HUBS`),
never imported from an arbitrary string, so a hub name written in a file (``model.json``, a
checkpoint) is as safe to follow as a built-in model name. The library itself is optional: when
it is not installed, :func:`create_hub_model` says which package to install.

Nothing is downloaded: the model is built with random weights (``weights=None`` for torchvision,
``pretrained=False`` for timm), and asking for pretrained weights is refused with a pointer to
loading a local weights file instead (``filterprune prune --load FILE``, or
``model.load_state_dict(torch.load(FILE))``)::

    from filterprune.models import create_model
    model = create_model("torchvision:resnet18", num_classes=10)
    model = create_model("timm:convnext_atto", num_classes=10)
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import FilterpruneError

__all__ = [
    "HUBS",
    "HubError",
    "check_hub_args",
    "create_hub_model",
    "input_channels_arg",
    "input_shape",
    "is_hub_name",
]


class HubError(FilterpruneError, ValueError):
    """A hub name that cannot be built: library missing, unknown model, or a download asked for."""


@dataclass(frozen=True)
class Hub:
    """How to build models of one library: its module and the name of its factory function."""

    package: str  # what to pip install
    module: str  # imported with importlib
    factory: str  # factory(name, **kwargs) -> nn.Module
    no_download: dict[str, Any]  # arguments forced so that nothing is downloaded
    list_hint: str
    # the factory's keyword for the input's channel count; None: its models take 3 channels only
    channels_arg: str | None = None


HUBS: dict[str, Hub] = {
    "torchvision": Hub(
        "torchvision",
        "torchvision.models",
        "get_model",
        {"weights": None},
        "torchvision.models.list_models()",
    ),
    "timm": Hub(
        "timm", "timm", "create_model", {"pretrained": False}, "timm.list_models()", "in_chans"
    ),
}


def input_channels_arg(spec: str) -> str | None:
    """The keyword that sets a model's input channels: ``in_channels`` for the built-in models,
    the library's own for a hub model (timm's ``in_chans``), ``None`` where the library has
    none (torchvision's models take 3 channels)."""
    return HUBS[spec.partition(":")[0]].channels_arg if is_hub_name(spec) else "in_channels"


def is_hub_name(spec: str) -> bool:
    """True for ``LIBRARY:MODEL`` with a library of :data:`HUBS` (e.g. ``timm:resnet18``)."""
    prefix, sep, name = spec.partition(":")
    return bool(sep) and prefix in HUBS and bool(name)


# parts of argument names that make a library read or fetch a file, a URL or a nested config
_PATH_LIKE = ("path", "file", "dir", "url", "checkpoint", "cache", "overlay", "cfg", "hub", "root")


def _plain(value: Any) -> bool:
    """A number (finite), string, boolean or None, or a list of them."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_plain(v) and not isinstance(v, list | tuple) for v in value)
    return False


def check_hub_args(spec: str, kwargs: dict[str, Any], *, source: str = "model arguments") -> None:
    """Refuse hub-model arguments that are not plain values, or whose name points at a file.

    A hub library's factory takes arguments such as timm's ``checkpoint_path`` or
    ``pretrained_cfg_overlay`` that read files or fetch weights; a ``model.json`` (untrusted)
    must not reach them. ``source`` names where the arguments came from (``--model-arg`` or the
    model.json file).

    Raises:
        HubError: Names the key, the value, ``source`` and the fix.
    """
    for key, value in kwargs.items():
        lowered = str(key).lower()
        if any(part in lowered for part in _PATH_LIKE):
            raise HubError(
                f"{source}: model argument {key!r}={value!r:.80} of {spec} is refused: "
                "filterprune passes a hub model no argument that names a file, URL or config "
                "to read; remove it, and load local weights with --load FILE instead"
            )
        if not _plain(value):
            raise HubError(
                f"{source}: model argument {key!r} of {spec} must be a number, string, boolean "
                f"or a list of them, got {value!r:.80}; remove it or pass a plain value"
            )


def create_hub_model(spec: str, **kwargs: Any) -> nn.Module:
    """Build ``LIBRARY:MODEL`` with random weights, passing ``kwargs`` to the library's factory.

    Args:
        spec: A hub name such as ``"torchvision:resnet18"`` or ``"timm:convnext_atto"``.
        **kwargs: The library's model arguments (``num_classes=10``; timm: ``in_chans``...).

    Raises:
        HubError: The library is not installed (the message says what to install), the model is
            unknown to it, or pretrained weights were requested.
    """
    prefix, _, name = spec.partition(":")
    if not is_hub_name(spec):
        known = ", ".join(f"{h}:MODEL" for h in HUBS)
        raise HubError(f"{spec!r} is not a hub name; expected one of {known}")
    hub = HUBS[prefix]
    check_hub_args(spec, kwargs)
    for key, value in hub.no_download.items():
        if key in kwargs and kwargs[key] not in (value, None):
            raise HubError(
                f"{spec}: {key}={kwargs[key]!r} would download weights, and filterprune downloads "
                "nothing; build the model without it and load a local weights file instead "
                "(filterprune ... --load FILE, or model.load_state_dict(torch.load(FILE)))"
            )
    try:
        module = importlib.import_module(hub.module)
    except ImportError as exc:
        raise HubError(
            f"{spec} needs the {hub.package!r} package, which is not installed ({exc}); "
            f"install it (pip install {hub.package}) or use a built-in model "
            "(filterprune inspect --list-models)"
        ) from None
    factory = getattr(module, hub.factory)
    try:
        model = factory(name, **{**kwargs, **hub.no_download})
    except (KeyError, ValueError, RuntimeError) as exc:
        raise HubError(
            f"{spec}: {hub.package} cannot build {name!r} with {kwargs} ({exc}); list its models "
            f"with {hub.list_hint}"
        ) from None
    if not isinstance(model, nn.Module):
        raise HubError(f"{spec}: {hub.package} returned {type(model).__name__}, not an nn.Module")
    return model


def input_shape(model: nn.Module, *, batch: int = 1) -> tuple[int, ...] | None:
    """The ``(batch, C, H, W)`` input ``model`` is built for, or ``None`` when it does not say.

    Built-in models carry ``input_size`` (``(C, H, W)``: 224x224 for ImageNet heads and stems,
    32x32 for CIFAR ones); timm models carry ``pretrained_cfg["input_size"]``.
    """
    size = getattr(model, "input_size", None)
    if size is None:
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
    if not isinstance(size, tuple | list) or not all(isinstance(d, int) for d in size):
        return None
    return (batch, *size)
