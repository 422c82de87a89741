"""The built-in demo: train a baseline on built-in data, prune it with Taylor, report.

Default: a U-Net on the synthetic Carvana-like set (segmentation, Dice); ``task="classify"``: a
VGG16-BN on scikit-learn's handwritten digits upscaled to 32x32. Nothing is downloaded. The
baseline is trained once and cached (safetensors) under ``cache_dir``; every pruning iteration
ranks channels with the Taylor criterion (Molchanov et al. 2017), removes the lowest globally in
one pass, finetunes, evaluates and checkpoints into ``run_dir``. At the end the per-iteration and
per-layer tables are printed and written with plots and a summary page.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from ..loop import PruneConfig, run_pruning
from ..models import create_model
from ..store.files import atomic_write_bytes
from ..store.load import load_state_dict_strict
from ..store.lock import run_lock
from ..store.owned import remove_recorded, write_record
from ..store.weights import read_weights, state_dict_bytes
from ..tasks import builtin_data, get_task


@dataclass(frozen=True)
class Preset:
    model: str
    model_kwargs: dict[str, Any]
    data_kwargs: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    batch_size: int
    baseline_steps: int
    lr: float
    iterations: int
    amount: float
    ranking_batches: int
    finetune_steps: int
    final_finetune: int


PRESETS: dict[tuple[str, str], Preset] = {
    ("segment", "full"): Preset(
        "unet", dict(base=12, num_classes=1), dict(image_size=64, num_cars=64, views_per_car=8),
        (1, 3, 64, 64), 16, 250, 2e-3, 4, 0.15, 8, 40, 60,
    ),
    ("segment", "quick"): Preset(
        "unet", dict(base=8, num_classes=1), dict(image_size=48, num_cars=32, views_per_car=6),
        (1, 3, 48, 48), 16, 100, 3e-3, 2, 0.2, 4, 20, 20,
    ),
    ("classify", "full"): Preset(
        "vgg16_bn", dict(width=0.25, head="cifar", num_classes=10), dict(image_size=32),
        (1, 3, 32, 32), 64, 250, 2e-3, 4, 0.15, 8, 40, 60,
    ),
    ("classify", "quick"): Preset(
        "vgg16_bn", dict(width=0.125, head="cifar", num_classes=10), dict(image_size=32),
        (1, 3, 32, 32), 64, 100, 3e-3, 2, 0.2, 4, 20, 20,
    ),
    ("segment", "smoke"): Preset(
        "unet", dict(base=4, num_classes=1), dict(image_size=32, num_cars=8, views_per_car=4),
        (1, 3, 32, 32), 8, 10, 3e-3, 1, 0.2, 2, 4, 0,
    ),
    ("classify", "smoke"): Preset(
        "vgg16_bn", dict(width=1 / 16, head="cifar", num_classes=10), dict(image_size=32),
        (1, 3, 32, 32), 32, 10, 3e-3, 1, 0.2, 2, 4, 0,
    ),
}  # fmt: skip

SIZES = ("full", "quick", "smoke")
DEMO_RECORD = "demo.json"  # written last: the files of a finished demo, which the next replaces


@dataclass(frozen=True)
class DemoConfig:
    """Options of :func:`run_demo`.

    Attributes:
        task: ``"segment"`` (U-Net, synthetic cars) or ``"classify"`` (VGG16-BN, digits).
        size: ``"full"``, ``"quick"`` (about 4 minutes on 2 busy cores with the baseline; see
            ``benchmarks/results/demo_quick_segment.json``) or
            ``"smoke"`` (seconds; for tests, the numbers mean nothing).
        run_dir: Where checkpoints, tables, plots and the summary go (default
            ``runs/demo-TASK``, e.g. ``runs/demo-segment``).
        cache_dir: Where the trained baseline is cached between runs.
        seed: Seed for data, training and pruning.
        progress: Show progress bars.
    """

    task: str = "segment"
    size: str = "full"
    run_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: Path(".cache/filterprune"))
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.task not in ("segment", "classify"):
            raise ConfigError(f"task must be 'segment' or 'classify', got {self.task!r}")
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {', '.join(SIZES)}, got {self.size!r}")
        if self.run_dir is None:
            object.__setattr__(self, "run_dir", Path(f"runs/demo-{self.task}"))

    @property
    def preset(self) -> Preset:
        return PRESETS[(self.task, self.size)]


def _baseline(config: DemoConfig, task, train_loader, val_loader, say) -> torch.nn.Module:
    p = config.preset
    torch.manual_seed(config.seed)
    model = create_model(p.model, **p.model_kwargs)
    key = f"{config.task}-{config.size}-seed{config.seed}"
    weights = Path(config.cache_dir) / f"{key}.safetensors"
    if weights.exists():
        load_state_dict_strict(model, read_weights(weights), source=str(weights))
        say(f"baseline: reusing {weights}")
        return model
    say(f"baseline: training {p.model} for {p.baseline_steps} steps on built-in data")
    start = time.perf_counter()
    task.finetune(
        model,
        train_loader,
        steps=p.baseline_steps,
        lr=p.lr,
        optimizer="adam",
        progress=config.progress,
    )
    atomic_write_bytes(weights, state_dict_bytes(model))
    metrics = task.evaluate(model, val_loader, progress=config.progress)
    say(f"baseline: {metrics} after {time.perf_counter() - start:.0f} s (cached in {weights})")
    return model


def busy_load() -> float | None:
    """The load average when the machine is busier than its cores and nobody chose a thread
    count (``OMP_NUM_THREADS``); else ``None``.

    On such a machine torch's threads wait for each other whenever the scheduler sets one aside:
    at a load of about 9 on 2 cores the demo's U-Net trained 4-5 times faster on one thread
    (docs/benchmarks.md, "One thread or two on a busy machine").
    """
    if os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads() < 2:
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        return None
    return load if load >= (os.cpu_count() or 1) else None


def run_demo(config: DemoConfig | None = None, *, echo=print) -> Any:
    """Run the demo end to end and return the loop's :class:`~filterprune.loop.RunResult`.

    On a busy machine (see :func:`busy_load`) it runs on one torch thread and says so; the
    thread count is restored afterwards.
    """

    config = config or DemoConfig()
    threads, load = torch.get_num_threads(), busy_load()
    if load is not None:
        logging.getLogger(__name__).info(
            "the machine is busy (load average %.1f on %d cores): the demo runs on 1 thread, "
            "faster there than %d (OMP_NUM_THREADS=N chooses)",
            load,
            os.cpu_count(),
            threads,
        )
        torch.set_num_threads(1)
    try:
        return _run_locked(config, echo)
    finally:
        torch.set_num_threads(threads)


def _run_locked(config: DemoConfig, echo: Any) -> Any:
    p = config.preset
    # one demo at a time in a folder: another one's files are not ours to remove
    with run_lock(config.run_dir, what="demo folder", fix=_DEMO_FIX):
        # a previous demo's files are removed; a folder holding anything else is refused
        remove_recorded(config.run_dir, DEMO_RECORD, option="--run-dir")
        start = time.perf_counter()
        try:
            return _run(config, p, start, echo)
        except BaseException:  # stopped (Ctrl-C, an error): the next demo may start over here
            if Path(config.run_dir).is_dir() and not (Path(config.run_dir) / DEMO_RECORD).exists():
                _record(config, {"stop_reason": "interrupted"})
            raise


_DEMO_FIX = "wait for that demo to finish, or give this one another --run-dir"


def _record(config: DemoConfig, fields: dict[str, Any]) -> None:
    # every file of the run folder: what the next demo removes
    write_record(config.run_dir, DEMO_RECORD, task=config.task, size=config.size, **fields)


def _run(config: DemoConfig, p: Preset, start: float, echo: Any) -> Any:
    from .. import report

    task = get_task(config.task)
    train, val = builtin_data(config.task, seed=config.seed, **p.data_kwargs)
    gen = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(train, batch_size=p.batch_size, shuffle=True, generator=gen)
    val_loader = DataLoader(val, batch_size=64)
    model = _baseline(config, task, train_loader, val_loader, echo)
    example = torch.zeros(p.input_shape)

    def finetune(m, start_step, budget):
        return task.finetune(
            m,
            train_loader,
            steps=budget.steps,
            lr=p.lr / 2,
            optimizer="adam",
            progress=config.progress,
        )

    prune_config = PruneConfig(
        criterion="taylor",
        flops_reg=1e-3,
        amount=p.amount,
        scope="global",
        ranking_batches=p.ranking_batches,
        finetune=p.finetune_steps,
        final_finetune=p.final_finetune,
        max_iterations=p.iterations,
        metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        measure_latency=True,
        seed=config.seed,
    )
    result = run_pruning(
        model,
        example,
        config=prune_config,
        finetune=finetune,
        evaluate=lambda m: task.evaluate(m, val_loader, progress=config.progress),
        batches=lambda: iter(train_loader),
        loss_fn=task.loss,
        run_dir=config.run_dir,
        progress=config.progress,
    )
    from ..report.run_report import write_run_report
    from .prune import write_channels

    write_channels(Path(config.run_dir), result.model, example)  # as every prune run does
    echo("\nPer-iteration results\n")
    echo(report.to_markdown(result.table()))
    echo("\nPer-layer channels\n")
    echo(report.to_markdown(result.layer_table()))
    written = write_run_report(config.run_dir)
    elapsed = time.perf_counter() - start
    _record(config, {"seconds": elapsed, "stop_reason": result.stop_reason})
    echo(f"\nstopped: {result.stop_message}; total {elapsed:.0f} s")
    summary = next((f for f in written.files if f.name == "summary.md"), None)
    echo(f"pruned model and checkpoints: {config.run_dir}; summary: {summary}")
    return result
