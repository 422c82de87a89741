"""``model.json``: how to rebuild the original model of a checkpoint or run folder, and its data.

Written by ``filterprune train`` (into ``--out``) and ``filterprune prune`` (into ``--run-dir``)::

    {"model": "vgg16_bn", "model_args": {"width": 0.25, "num_classes": 10},
     "task": "classify", "input_shape": [1, 3, 32, 32],
     "data": {"data": "builtin", "image_size": 32, "val_fraction": 0.2, "data_args": {},
              "seed": 0},
     "training": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0,
                  "schedule": "cosine"}}

A run folder's also holds ``"finetuning"``: the optimizer settings its finetuning used and the
``final_lr`` of its final finetuning; ``"training"`` stays the baseline's, which a ``prune`` of
the run folder inherits.

The file is untrusted input: every field is checked (a wrong one is an error naming the file,
the field and the fix) and ``model`` is only used when it names a built-in model. A factory
``MODULE:FUNCTION`` written in the file is never imported; the user passes it on the command
line (``--model MODULE:FUNCTION --trust-model-code``) instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FilterpruneError
from .files import atomic_write_json, read_json

__all__ = ["MODEL_JSON", "ModelJsonError", "find_model_json", "read_model_json", "write_model_json"]

MODEL_JSON = "model.json"


class ModelJsonError(FilterpruneError, ValueError):
    """A ``model.json`` field is missing, of the wrong type or out of range."""


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def _arguments(value: Any) -> bool:
    return isinstance(value, dict) and _json_value(value)


def _image_size(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) == 2 and all(_positive_int(v) for v in value)
    return _positive_int(value)


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1


# field -> (check, what it must be)
FIELDS = {
    "model": (lambda v: isinstance(v, str) and bool(v.strip()), "a model name such as 'vgg16_bn'"),
    "model_args": (_arguments, 'an object of keyword arguments, e.g. {"width": 0.25}'),
    "task": (lambda v: isinstance(v, str) and bool(v), "a task name such as 'classify'"),
    "input_shape": (
        lambda v: isinstance(v, list) and len(v) >= 2 and all(_positive_int(d) for d in v),
        "a list of at least two positive integers, e.g. [1, 3, 32, 32]",
    ),
    "data": (lambda v: isinstance(v, dict), "an object of data settings"),
    "training": (_arguments, 'an object of optimizer settings, e.g. {"name": "sgd"}'),
    "finetuning": (_arguments, 'an object of optimizer settings, e.g. {"name": "sgd"}'),
}
DATA_FIELDS = {
    "data": (lambda v: isinstance(v, str) and bool(v), "'builtin' or a folder path"),
    "image_size": (_image_size, "a positive integer (pixels) or [height, width]"),
    "val_fraction": (_fraction, "a number in [0, 1), e.g. 0.2"),
    "data_args": (_arguments, "an object of keyword arguments"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
}


def _check(path: Path, data: dict, fields: dict, prefix: str, *, open_ended: bool) -> None:
    for key, value in data.items():
        if key not in fields:
            if open_ended:
                continue
            raise ModelJsonError(
                f"model description {str(path)!r}: unknown field '{prefix}{key}' (known fields: "
                f"{', '.join(fields)}); remove it or rewrite the file with filterprune train"
            )
        check, want = fields[key]
        if not check(value):
            raise ModelJsonError(
                f"model description {str(path)!r}: field '{prefix}{key}' must be {want}, got "
                f"{value!r:.80}; fix the field or delete the file and pass --model and --task"
            )


def read_model_json(path: str | Path) -> dict[str, Any]:
    """The checked content of a ``model.json`` (see the module docstring for the fields)."""
    path = Path(path)
    data = read_json(path, what="model description")
    if not isinstance(data, dict):
        raise ModelJsonError(
            f"model description {str(path)!r} must hold a JSON object, got "
            f"{type(data).__name__}; delete it and pass --model and --task"
        )
    _check(path, data, FIELDS, "", open_ended=False)
    model = data.get("model")
    if isinstance(model, str) and data.get("model_args"):
        from ..models.hub import HubError, check_hub_args, is_hub_name

        if is_hub_name(model):
            try:
                check_hub_args(model, data["model_args"], source=f"model description {str(path)!r}")
            except HubError as exc:
                raise ModelJsonError(str(exc)) from None
    _check(path, data.get("data", {}), DATA_FIELDS, "data.", open_ended=True)
    return data


def find_model_json(path: str | Path | None) -> Path | None:
    """``model.json`` in ``path``, or up to two folders above it (a run folder's checkpoint)."""
    if path is None:
        return None
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / MODEL_JSON).is_file():
            return candidate / MODEL_JSON
    return None


def write_model_json(folder: str | Path, info: dict[str, Any]) -> Path:
    """Write ``folder/model.json`` atomically (the fields of the module docstring)."""
    unknown = sorted(set(info) - set(FIELDS))
    if unknown:
        raise ConfigError(f"model.json fields {unknown} are not known; known: {', '.join(FIELDS)}")
    return atomic_write_json(Path(folder) / MODEL_JSON, info)
