"""Building a saved model again: a model spec, model.json and the widths of the checkpoint.

A run folder or checkpoint made by filterprune holds ``model.json`` (which factory and which
arguments build the *original* architecture, the task, the input shape and the data settings)
next to the weights and ``plan.json``. A checkpoint made elsewhere (e.g. the seed U-Net project)
comes with a channel file (``channels.txt``: one width per conv layer) or a widths JSON instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._modes import restore_training, training_flags
from ..loop.describe import MODEL_JSON, MODEL_NOTE
from ..models._factory import UntrustedCodeError, is_builtin
from ..models._user_code import import_user_module
from ..plan import Plan
from ..store.channels import read_channel_txt, read_spec
from ..store.load import load
from ..store.model_json import find_model_json
from ..store.model_json import read_model_json as _read_model_json
from ..store.model_json import write_model_json as _write_model_json
from ..store.widths import channel_widths, plan_from_widths
from .errors import RecipeError

__all__ = [
    "MODEL_JSON",
    "find_model_json",
    "load_model",
    "check_fits_data",
    "check_runs_on",
    "model_factory",
    "read_model_json",
    "saved_model",
    "widths_plan",
    "write_model_json",
]

log = logging.getLogger(__name__)


def model_factory(
    spec: str, kwargs: dict[str, Any], *, trust_code: bool = False
) -> Callable[[], nn.Module]:
    """A zero-argument factory for a built-in model, a hub name or a ``module:function`` path.

    Hub names (``torchvision:resnet18``, ``timm:convnext_atto``) go through the fixed table of
    :mod:`filterprune.models.hub`, never through an import of the text itself. A
    ``module:function`` imports the module, which runs its code: it is refused unless
    ``trust_code`` (the CLI's ``--trust-model-code``).
    """
    from ..models import HubError, create_hub_model, is_hub_name
    from ..models.hub import check_hub_args

    if is_hub_name(spec):
        try:  # before the library is imported: no file, URL or config reaches its factory
            check_hub_args(spec, kwargs, source="--model-arg")
        except HubError as exc:
            raise RecipeError(str(exc)) from None

        def factory(**kw: Any) -> nn.Module:
            try:
                return create_hub_model(spec, **kw)
            except HubError as exc:
                raise RecipeError(f"--model {exc}") from None

    elif ":" in spec:
        module_name, _, attr = spec.rpartition(":")
        if not trust_code:
            raise UntrustedCodeError(
                f"--model {spec} would import module {module_name!r} and run its code; add "
                "--trust-model-code (Python: trust_code=True) if you trust it, or use a "
                "built-in model"
            )
        try:
            module = import_user_module(module_name)
        except ImportError as exc:
            raise RecipeError(f"--model {spec}: cannot import {module_name!r} ({exc})") from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise RecipeError(f"--model {spec}: {module_name!r} has no callable {attr!r}")
    else:
        from ..models import create_model, list_models

        if spec not in list_models():
            import difflib

            close = difflib.get_close_matches(spec, list_models(), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise RecipeError(
                f"--model {spec}: unknown model{guess}; built-in models: "
                f"{', '.join(list_models())}; or pass an importable factory as MODULE:FUNCTION"
            )

        def factory(**kw: Any) -> nn.Module:
            return create_model(spec, **kw)

    def build() -> nn.Module:
        from .._memory import doing

        try:
            with doing(
                f"building model {spec!r} with model arguments {kwargs}",
                "choose smaller model arguments (--model-arg; model_args in model.json)",
            ):
                model = factory(**kwargs)
        except TypeError as exc:
            raise RecipeError(f"--model {spec} with --model-arg {kwargs}: {exc}") from None
        if not isinstance(model, nn.Module):
            raise RecipeError(f"--model {spec} returned {type(model).__name__}, not an nn.Module")
        return model

    return build


def read_model_json(path: Path | None) -> dict[str, Any]:
    """The model description next to ``path`` (see :func:`find_model_json`); ``{}`` if none."""
    found = find_model_json(path)
    return _read_model_json(found) if found is not None else {}


def saved_model(
    load: str | Path | None,
    *,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    task: str | None = None,
    require_task: bool = True,
    trust_code: bool = False,
) -> dict[str, Any]:
    """model.json next to ``load`` with ``model``/``model_args``/``task`` on top.

    A model named only in model.json must be a built-in or hub one: a ``module:function``
    written in a file is not imported unless the caller opts in, either by naming it
    (``model=``, the CLI's ``--model ... --trust-model-code``) or with ``trust_code=True``
    (``--trust-model-code`` alone), which reuses the factory the run remembered and logs which
    code it will import. Given the same ``model`` as the file, the file's arguments are kept
    under ``model_args``.

    Raises:
        RecipeError: Neither names the model (or, with ``require_task``, the task); the message
            points at the run's ``MODEL.txt`` when a Python run left one.
        UntrustedCodeError: model.json names code and ``model`` is not given.
    """
    found = find_model_json(Path(load)) if load is not None else None
    if found is None and load is not None:  # not a folder filterprune wrote? say that first
        from ..store.load import resolve_checkpoint

        resolve_checkpoint(load)
    info = _read_model_json(found) if found is not None else {}
    if model is not None:
        saved = info.get("model_args", {}) if info.get("model") == model else {}
        info = {**info, "model": model, "model_args": {**saved, **dict(model_args or {})}}
    else:
        if model_args:
            info["model_args"] = {**info.get("model_args", {}), **model_args}
        if "model" in info and not is_builtin(info["model"]):  # code named in a file
            if not trust_code:
                raise UntrustedCodeError(
                    f"{found} names the model factory {info['model']!r}, which is not a "
                    "built-in model; filterprune never imports code named in a file unless you "
                    "opt in. If you made this folder and trust that code, add "
                    "--trust-model-code (or name it yourself: --model "
                    f"{info['model']} --trust-model-code)"
                )
            log.warning(
                "importing the model factory %r named in %s (--trust-model-code)",
                info["model"],
                found,
            )
    if "model" not in info:
        where = f" (no {MODEL_JSON} next to {load})" if load is not None else ""
        note = _model_note(load)
        hint = f"; {note} says which factory builds it" if note else ""
        raise RecipeError(
            f"--model is required{where}; e.g. --model vgg16_bn --model-arg width=0.25{hint}"
        )
    info.setdefault("model_args", {})
    if task is not None:
        info["task"] = task
    if require_task and info.get("task") is None:
        raise RecipeError(
            "--task is required (classify, segment or detect); no model.json names it"
        )
    return info


def _model_note(load: str | Path | None) -> Path | None:
    if load is None:
        return None
    folder = Path(load) if Path(load).is_dir() else Path(load).parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / MODEL_NOTE).is_file():
            return candidate / MODEL_NOTE
    return None


def write_model_json(folder: Path, info: dict[str, Any]) -> None:
    """Write ``folder/model.json`` atomically (its fields are checked when read back)."""
    _write_model_json(folder, info)


def widths_plan(
    factory: Callable[[], nn.Module],
    example: torch.Tensor,
    *,
    channel_txt: Path | None = None,
    spec: Path | None = None,
) -> Plan | None:
    """The plan from the factory's architecture to a checkpoint's widths (None: neither given).

    Args:
        factory: Builds the original (full-width) architecture.
        example: An input of the model, traced to find the channel groups and the output head.
        channel_txt: A channel file: one width per conv layer in module order (the output
            head's line may be included or left out).
        spec: A widths JSON ``{layer: channels}`` or a plan.json.
    """
    if channel_txt is not None:
        model = factory()
        channels = read_channel_txt(channel_txt)
        try:
            widths = channel_widths(
                model, channels, example_inputs=example, source=str(channel_txt)
            )
            return plan_from_widths(model, widths, example)
        except ValueError as exc:
            message = str(exc)
            if not message.startswith(str(channel_txt)):
                message = f"{channel_txt}: {message}"
            raise RecipeError(f"--channel-txt {message}") from None
    if spec is not None:
        found = read_spec(spec)
        try:
            return found if isinstance(found, Plan) else plan_from_widths(factory(), found, example)
        except ValueError as exc:
            raise RecipeError(f"--spec {spec}: {exc}") from None
    return None


def load_model(
    path: Path,
    factory: Callable[[], nn.Module],
    example: torch.Tensor,
    *,
    channel_txt: Path | None = None,
    spec: Path | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, Plan]:
    """Rebuild the model saved at ``path`` and return it with its plan from the original.

    The plan comes from ``channel_txt`` or ``spec`` when given, else from the checkpoint's
    ``plan.json`` (none: the full architecture).
    """
    from ..store.checkpoint import read_plan
    from ..store.load import resolve_checkpoint

    plan = widths_plan(factory, example, channel_txt=channel_txt, spec=spec)
    model = load(path, factory, plan=plan, device=device)
    if plan is None:
        _, plan_path = resolve_checkpoint(path)
        plan = read_plan(plan_path) if plan_path is not None else Plan()
    return model, plan


def check_runs_on(net: nn.Module, example: torch.Tensor, model: str) -> None:
    """Run ``net`` once on ``example``; a failure is the user's model/data mismatch, said so.

    Without this check, a model whose first layer expects 1 channel fed 3-channel images fails
    deep inside training with torch's message only, which reads like a bug of filterprune.
    """
    from .._memory import is_allocation_failure

    was_training = training_flags(net)
    net.eval()
    try:
        with torch.no_grad():
            net(example.to(next(net.parameters(), example).device))
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        if is_allocation_failure(error):
            raise
        raise RecipeError(
            f"--model {model} fails on the data's input of shape {tuple(example.shape)}: "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}; make the "
            "model and the data agree (its input channels and size: --image-size, --data-arg "
            "channels=N, or the model's own --model-arg)"
        ) from error
    finally:
        restore_training(was_training)


def _label_count(dataset: Any) -> int | None:
    """How many classes the labels of ``dataset`` need (largest label + 1), if it says cheaply."""
    from torch.utils.data import Subset

    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    if classes is not None and len(classes):
        return len(classes)
    labels = getattr(dataset, "labels", None)
    tensors = getattr(dataset, "tensors", None)
    if labels is None and tensors is not None and len(tensors) > 1:
        labels = tensors[1]
    if isinstance(labels, torch.Tensor) and labels.numel() and not labels.is_floating_point():
        return int(labels.max()) + 1
    return None


def check_fits_data(net: nn.Module, data: Any, model: str) -> None:
    """Before any training: ``net``'s output fits the data's labels (one check for train, prune
    and eval).

    Classify: the model must output at least as many classes as the data has (otherwise
    cross-entropy fails with "Target 10 is out of bounds" in the middle of a run); segment: the
    task's own shape check on one sample (one-channel logits of the masks' size).

    Raises:
        DataError: The counts differ; the message names both and the fix.
    """
    from .._memory import doing
    from ..errors import DataError

    example, target = data.val[0]
    with doing(f"running --model {model} on one input of shape {tuple(example.shape)}",
               "use smaller inputs (--image-size) or a narrower model (--model-arg)"):  # fmt: skip
        was_training = training_flags(net)
        net.eval()
        try:
            with torch.no_grad():
                device = next(net.parameters(), example).device
                output = data.task.prediction(net(example.unsqueeze(0).to(device)))
        except (RuntimeError, ValueError, TypeError, IndexError) as error:
            check_runs_on(net, data.example, model)  # the same message as train's check
            raise error
        finally:
            restore_training(was_training)
    source = data.settings.get("data", "builtin") if isinstance(data.settings, dict) else "builtin"
    if data.task.name == "classify" and output.ndim == 2:
        outputs = int(output.shape[1])
        needed = max(_label_count(data.train) or 0, _label_count(data.val) or 0)
        if needed > outputs:
            raise DataError(
                f"--data {source}: the data has {needed} classes (labels 0..{needed - 1}) but "
                f"--model {model} outputs {outputs} classes; build the model for {needed} classes "
                f"(--model-arg num_classes={needed}, or train a new baseline on this data) or use "
                f"data with at most {outputs} classes"
            )
    target = torch.as_tensor(target).unsqueeze(0).to(device)
    data.task.align(output, target)  # e.g. segment: one-channel logits of the masks' size
