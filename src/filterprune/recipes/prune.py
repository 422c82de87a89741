"""Prune a saved model: rebuild it, finetune with the task's loss between iterations, checkpoint.

The workflow of ``filterprune prune``, callable from Python with the same defaults:

>>> from filterprune.loop import PruneConfig
>>> from filterprune.recipes import prune_saved
>>> result = prune_saved("runs/vgg-base", run_dir="runs/vgg-pruned",
...                      config=PruneConfig(criterion="taylor", amount=0.1, finetune=100))
...                                                                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config.recipe import resolve_task
from ..loop import PruneConfig, RunResult, run_pruning, task_callbacks
from ..models._user_code import stable_spec
from ..parallel import is_main_process
from ..store.channels import write_channel_txt
from ..store.lock import run_lock
from ..store.owned import discard_on_error
from ..store.rundir import RunDir
from ..store.widths import channel_list
from ..tasks.chance import warning_first_evaluation
from .data import Data, default_model_args, load_data
from .errors import RecipeError
from .models import (
    MODEL_JSON,
    check_fits_data,
    load_model,
    model_factory,
    saved_model,
    write_model_json,
)
from .train import Optimizer

__all__ = ["CHANNELS_TXT", "check_run_dir", "prune_saved", "with_final_pass", "write_channels"]

CHANNELS_TXT = "channels.txt"


def write_channels(run_dir: Path, model: Any, example: Any) -> Path | None:
    """Write ``run_dir/channels.txt`` (one width per conv layer, the output head left out).

    Returns the path, or None for a model without conv layers.
    """
    channels = channel_list(model, example)
    if not channels:
        return None
    return write_channel_txt(Path(run_dir) / CHANNELS_TXT, channels)


def with_final_pass(config: PruneConfig, train_loader: Any) -> PruneConfig:
    """``config`` with a final finetuning of one pass over ``train_loader`` (in steps), when it
    sets no finetuning budget at all; else ``config`` as it is.

    The loop's own default (300 steps) is a touch-up; after pruning to a quarter of the MACs
    or less, recovering the accuracy takes a short retraining (docs/benchmarks.md,
    "Fashion-MNIST"). A loader without a length keeps the loop's default.
    """
    finetuning = config.finetuning
    if finetuning.per_iteration is not None or finetuning.final is not None:
        return config
    if finetuning.unit != "steps":
        return config  # the loop's default final budget is already one epoch
    try:
        steps = len(train_loader)
    except TypeError:
        return config
    return config.replace(finetuning=replace(finetuning, final=max(int(steps), 1)))


def check_run_dir(run_dir: str | Path, *, resume: bool) -> None:
    """Refuse to start a new run in a folder that holds one (``resume`` continues it), or in a
    symbolic link."""
    from ..store.files import refuse_symlink

    refuse_symlink(run_dir, option="--run-dir")
    if RunDir(run_dir).exists() and not resume:
        raise RecipeError(
            f"--run-dir {run_dir} already holds a run; add --resume to continue it or "
            "choose another --run-dir"
        )


def prune_saved(
    load: str | Path,
    *,
    run_dir: str | Path,
    config: PruneConfig | None = None,
    data: Data | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    task: str | None = None,
    optimizer: Optimizer | None = None,
    final_lr: float | None = None,
    channel_txt: str | Path | None = None,
    spec: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    trust_code: bool = False,
) -> RunResult:
    """Prune the model saved at ``load`` iteratively, checkpointing into ``run_dir``.

    Args:
        load: A checkpoint folder (from ``train``), a run folder or a ``.safetensors`` file.
        run_dir: The run folder; it receives the checkpoints, ``model.json`` (so that ``eval``,
            ``report`` and :func:`filterprune.load` can rebuild the model), ``channels.txt``
            and the report tables.
        config: The pruning settings (default :class:`~filterprune.loop.PruneConfig`).
        data: From :func:`load_data`; default: the settings saved in model.json.
        model, model_args, task: Override model.json's (needed when there is none).
        optimizer: Finetuning settings; default: the optimizer the baseline was trained with
            (model.json ``"training"``, else :class:`Optimizer`'s defaults) at a tenth of its
            learning rate, kept constant (:meth:`Optimizer.for_finetuning`).
        final_lr: The final finetuning starts at this rate and decays it to 0 along a cosine
            (a short retraining of the final model); default: the rate the baseline was
            trained with (model.json, else :class:`Optimizer`'s). Its budget, unless ``config``
            sets a finetuning budget, is one pass over the training data
            (:func:`with_final_pass`).
        channel_txt, spec: The widths of a checkpoint made elsewhere (see
            :func:`filterprune.recipes.widths_plan`).
        resume: Continue the run in ``run_dir``.
        progress: Progress bars and log lines.
        trust_code: Allow ``model`` to be ``module:function`` (importing the module runs its
            code; the CLI's ``--trust-model-code``). Never needed for built-in models.

    Returns:
        The loop's :class:`~filterprune.loop.RunResult`.
    """
    load, run_dir = Path(load), Path(run_dir)
    info = saved_model(load, model=model, model_args=model_args, task=task, trust_code=trust_code)
    task_name = info["task"]
    check_run_dir(run_dir, resume=resume)
    config = config or PruneConfig()
    if data is None:  # the split follows model.json (the baseline's split)
        data = load_data(task_name, saved=info.get("data"), seed=None if info.get("data") else 0)
    trained = Optimizer.from_dict(info.get("training"), source=f"{load} {MODEL_JSON}")
    optimizer = optimizer or trained.for_finetuning()
    final_lr = trained.final_lr(final_lr)
    config = with_final_pass(config, data.train_loader)
    config = config.replace(
        ranking=resolve_task(config.ranking, task_name, config.stopping.targets)
    )
    kwargs = default_model_args(info["model"], task_name, data, info["model_args"])
    factory = model_factory(info["model"], kwargs, trust_code=trust_code)
    net, plan = load_model(load, factory, data.example, channel_txt=channel_txt, spec=spec)
    check_fits_data(net, data, info["model"])  # before anything runs or is written
    hooks = task_callbacks(
        data.task,
        data.train_loader,
        data.val_loader,
        device=config.device,
        progress=progress,
        final_lr=final_lr,
        **optimizer.kwargs(),
    )
    main = is_main_process()
    # an error before the first checkpoint leaves no run folder (or model.json) behind; one
    # process writes the folder at a time (rank 0 of a process group)
    with (
        discard_on_error(run_dir, kept=lambda: not main or RunDir(run_dir).exists()),
        run_lock(run_dir, enabled=main),
    ):
        check_run_dir(run_dir, resume=resume)  # again, now that no one else writes it
        if main and not (run_dir / MODEL_JSON).is_file():
            write_model_json(
                run_dir,
                {
                    "model": stable_spec(info["model"]),  # found again from any folder
                    "model_args": kwargs,
                    "task": task_name,
                    "input_shape": list(data.example.shape),
                    "data": data.settings,
                    # the baseline's training: what a later 'prune' of this run inherits
                    "training": trained.to_dict(),
                    "finetuning": {**optimizer.to_dict(), "final_lr": final_lr},
                },
            )
        result = run_pruning(
            net,
            data.example,
            config=config,
            run_dir=run_dir,
            resume=resume,
            base_plan=plan,
            progress=progress,
            **{
                **hooks.as_kwargs(),
                "evaluate": warning_first_evaluation(  # said before the first ranking
                    hooks.evaluate,
                    data.example,
                    what=f"the model loaded from {load}",
                    fix="Pruning keeps what a model learned; train it first (filterprune train).",
                ),
            },
        )
        if main:
            write_channels(run_dir, result.model, data.example)
    return result
