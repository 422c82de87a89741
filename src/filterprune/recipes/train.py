"""Train a baseline from scratch and save it as a checkpoint folder the other recipes load.

>>> from filterprune.recipes import Optimizer, load_data, train_baseline
>>> data = load_data("classify", image_size=32)                        # doctest: +SKIP
>>> train_baseline("vgg16_bn", data, out="runs/base", steps=300,
...                model_args={"width": 0.25, "head": "cifar"},
...                optimizer=Optimizer(name="adam", lr=2e-3))          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .._numbers import real_problem
from ..loop import seed_everything
from ..loop.callbacks import EpochLoader
from ..models._user_code import stable_spec
from ..parallel import is_distributed, is_main_process, rewrap_ddp
from ..plan import Plan
from ..store.checkpoint import is_own_checkpoint, write_checkpoint_dir
from ..store.files import refuse_symlink
from ..store.model_json import MODEL_JSON
from ..store.weights import state_dict_bytes
from ..tasks.chance import warn_near_chance
from .data import Data, default_model_args
from .errors import RecipeError
from .models import check_fits_data, check_runs_on, model_factory

__all__ = ["Optimizer", "TrainResult", "check_out", "train_baseline"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
# prune finetunes at this fraction (1 / N) of the rate the baseline was trained with: at the full rate
# a short finetuning phase leaves the weights wherever the last noisy step put them, and on
# Fashion-MNIST that alone cost VGG 2.7 points (docs/benchmarks.md, "finetuning rate")
FINETUNE_LR_DIVISOR = 10


@dataclass(frozen=True)
class Optimizer:
    """How a model is trained or finetuned; stored in model.json as ``"training"``.

    Attributes:
        name: ``"sgd"`` or ``"adam"``.
        lr: Learning rate.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty.
        schedule: ``"cosine"`` (default) decays ``lr`` to 0 over the training budget;
            ``"constant"`` keeps it. A model.json without the key was trained at a constant rate.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise RecipeError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}"
            )
        if self.schedule not in SCHEDULES:
            raise RecipeError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        for flag, value, limits in (
            ("--lr", self.lr, {"low": 0.0, "low_open": True}),
            ("--momentum", self.momentum, {"low": 0.0, "high": 1.0, "high_open": True}),
            ("--weight-decay", self.weight_decay, {"low": 0.0, "high": 1.0}),
        ):
            problem = real_problem(value, **limits)
            if problem is not None:
                raise RecipeError(
                    f"{flag} ({flag[2:].replace('-', '_')}): {problem}, got {value!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, source: str = "model.json") -> Optimizer:
        """The settings stored in ``data`` (unknown keys ignored; a bad value names ``source``)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in (data or {}).items() if k in known}
        if data is not None:
            given.setdefault("schedule", "constant")  # written before schedules existed
        try:
            return cls(**given)
        except (TypeError, RecipeError) as exc:
            raise RecipeError(f"{source}: training settings {data!r}: {exc}") from None

    def for_finetuning(self) -> Optimizer:
        """How ``prune`` finetunes a model trained with these settings when no rate is given:
        the same optimizer at a tenth (``FINETUNE_LR_DIVISOR``) of the rate, kept constant."""
        return replace(self, lr=self.lr / FINETUNE_LR_DIVISOR, schedule="constant")

    def final_lr(self, given: float | None = None) -> float:
        """The rate ``prune``'s final finetuning starts at: ``given`` (``--final-lr``), else
        the rate of these (the baseline's training) settings."""
        if given is None:
            return self.lr
        if not given > 0:
            raise RecipeError(f"--final-lr must be > 0, got {given:g}")
        if real_problem(given, low=0.0, low_open=True) is not None:
            raise RecipeError(f"--final-lr: {real_problem(given, low=0.0)}, got {given!r}")
        return given

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`filterprune.tasks.Task.finetune`."""
        return {
            "optimizer": self.name,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
        }


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_baseline` did: optimizer steps taken, validation metrics, the folder."""

    steps: int
    metrics: dict[str, float]
    out: Path


def check_out(out: str | Path, *, overwrite: bool) -> None:
    """Refuse an ``out`` that exists, unless ``overwrite`` and filterprune wrote it."""
    out = Path(out)
    refuse_symlink(out, option="--out")
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise RecipeError(
            f"--out {out} already exists; add --overwrite to replace it (only a checkpoint "
            "folder filterprune wrote is replaced) or choose another --out"
        )
    if not is_own_checkpoint(out):
        raise RecipeError(
            f"--out {out} is not a checkpoint folder filterprune wrote (or holds other files); "
            "it is left untouched: choose another --out"
        )


def train_baseline(
    model: str,
    data: Data,
    *,
    out: str | Path,
    model_args: dict[str, Any] | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    optimizer: Optimizer | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    trust_code: bool = False,
) -> TrainResult:
    """Train ``model`` on ``data`` with the task's loss, evaluate it and save it into ``out``.

    ``out`` receives weights.safetensors, plan.json, model.json (the model, its arguments, the
    task, the input shape, the data settings and the optimizer settings, which ``prune`` reuses
    as its finetuning defaults) and metrics.json.

    Args:
        model: A built-in model name or an importable ``module:function``.
        data: From :func:`filterprune.recipes.load_data`.
        out: The checkpoint folder.
        model_args: Keyword arguments of the model factory (``num_classes`` is filled from the
            data for built-in models).
        steps, epochs: The budget (default 200 steps).
        optimizer: Optimizer settings (default SGD, lr 0.01, momentum 0.9, cosine decay).
        seed: Seeds the initialisation and the batch order.
        device: Where to train.
        progress: Show a progress bar.
        overwrite: Replace ``out`` if it is a baseline filterprune wrote (never other folders);
            without it an existing ``out`` is an error, raised before any training.
        trust_code: Allow ``model`` to be ``module:function`` (importing the module runs its
            code; the CLI's ``--trust-model-code``). Never needed for built-in models.
    """
    check_out(out, overwrite=overwrite)  # before any training
    optimizer = optimizer or Optimizer()
    seed_everything(seed, "train")
    task_name = data.task.name
    kwargs = default_model_args(model, task_name, data, dict(model_args or {}))
    net = model_factory(model, kwargs, trust_code=trust_code)().to(device)
    check_runs_on(net, data.example, model)
    check_fits_data(net, data, model)  # e.g. more classes in the data than the model's outputs
    if steps is None and epochs is None:
        steps = 200
    done = data.task.finetune(
        rewrap_ddp(net) if is_distributed() else net,  # DDP averages the ranks' gradients
        EpochLoader(data.train_loader),  # a DistributedSampler reshuffles every epoch
        steps=steps,
        epochs=epochs,
        device=device,
        progress=progress,
        schedule=optimizer.schedule,
        **optimizer.kwargs(),
    )
    out = Path(out)
    if not is_main_process():  # rank 0 evaluates and saves its replica
        return TrainResult(steps=done, metrics={}, out=out)
    metrics = data.task.evaluate(net, data.val_loader, device=device, progress=progress)
    warn_near_chance(  # a baseline that has not learned is not worth pruning
        metrics,
        net,
        data.example,
        what=f"the trained {model}",
        fix="Train longer (--steps, --epochs), check --lr and the labels before pruning it.",
    )
    info = {
        "model": stable_spec(model),  # found again from any folder
        "model_args": kwargs,
        "task": task_name,
        "input_shape": list(data.example.shape),
        "data": data.settings,
        "training": optimizer.to_dict(),
    }
    write_checkpoint_dir(  # one folder, written whole: a crash leaves the old one or the new one
        out,
        weights=state_dict_bytes(net.to("cpu")),
        plan=Plan(),
        extra_json={MODEL_JSON: info, "metrics.json": {"steps": done, "metrics": metrics}},
    )
    return TrainResult(steps=done, metrics=metrics, out=out)
