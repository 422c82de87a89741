"""``filterprune prune``: iterative pruning of a saved model (rank -> remove -> finetune -> evaluate)."""

from __future__ import annotations

import argparse
import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import FLAT, TOP_LEVEL, ConfigError, PruneConfig, flat_names
from ..criteria.regularize import COSTS
from ..recipes import Optimizer, prune_saved
from ..recipes.models import MODEL_JSON
from ..recipes.prune import check_run_dir, with_final_pass
from ..store.files import read_text
from ..store.lock import run_lock
from ..store.owned import discard_on_error
from ..store.rundir import RunDir
from ._args import (
    CLIError,
    FlatList,
    add_model_args,
    add_widths_args,
    amount,
    amounts,
    batch_sizes,
    device,
    existing_path,
    key_value,
    model_info,
    real,
    trust,
)
from ._data import add_data_args, load_data
from ._distributed import join_torchrun
from ._output import say
from .train import add_run_args, add_training_args

NAME = "prune"
HELP = "prune a saved model iteratively, with checkpoints and resume"
DESCRIPTION = (
    "Load a model (a folder from 'filterprune train', a run folder or a .safetensors file), then "
    "repeat: rank channels with --criterion, remove --amount of them, finetune, evaluate; until "
    "--max-iterations, --max-pruned-fraction, a --target, the metric floor or nothing is left. "
    "With nothing else set the default recipe runs: Taylor scores ranked globally with a FLOPs "
    "cost term (--flops-reg 0.1), 10% of the prunable channels per iteration but at most 25% "
    "of any layer (--max-layer-fraction), 100 finetuning steps per iteration at a tenth of the "
    "baseline's rate and, at the end, one pass over the training data from the baseline's rate "
    "down a cosine (--final-lr); without --metric-floor/--max-metric-drop an iteration whose "
    "metric falls below half the starting value stops the run as a failure and the last good "
    "model is kept "
    "(--allow-collapse turns this off). "
    "Every iteration is checkpointed under --run-dir (weights.safetensors, plan.json, "
    "metrics.json, log.jsonl), with model.json and channels.txt (the final widths, one line per "
    "conv layer) beside them; --resume continues an interrupted run. Settings can also come "
    "from a JSON --config (a PruneConfig); flags override it.\n\n"
    "Data folders: classify reads DIR/train/CLASS/*.png + DIR/val/CLASS/*.png (or DIR/CLASS/* "
    "split randomly); segment reads Carvana's DIR/train/ID.jpg + DIR/train_masks/ID_mask.gif."
)
EXAMPLES = [
    "filterprune prune --load runs/vgg-base --criterion taylor --amount 0.1 "
    "--finetune-steps 100 --max-iterations 5 --run-dir runs/vgg-pruned",
    "filterprune prune --load runs/unet-base --amount 32 --ranking-batches 10 "
    "--finetune-steps 30 --target macs=-50% --metric-floor 0.9 --run-dir runs/unet-pruned",
    "filterprune prune --load seed_unet.safetensors --model unet --task segment "
    "--channel-txt seed_channels.txt --data ./carvana --run-dir runs/seed",
    "filterprune prune --load runs/vgg-base --config prune.json --resume --run-dir runs/vgg-pruned",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load",
        type=existing_path,
        required=True,
        metavar="MODEL",
        help="checkpoint folder, run folder or .safetensors file to prune",
    )
    add_model_args(parser)
    add_widths_args(parser)
    add_data_args(parser, required=False)
    p = parser.add_argument_group("pruning")
    p.add_argument("--config", type=existing_path, metavar="FILE", help="PruneConfig JSON")
    p.add_argument(
        "--criterion",
        help="taylor (default), l1, kmeans, ... (filterprune.list_criteria)",
    )
    p.add_argument(
        "--criterion-arg",
        action="append",
        type=key_value,
        default=None,
        metavar="KEY=VALUE",
        help="criterion constructor option (repeatable)",
    )
    p.add_argument(
        "--amount",
        type=amount,
        metavar="A",
        help="per iteration: a fraction (default 0.1 = 10%%) or a channel count (8)",
    )
    p.add_argument(
        "--schedule",
        type=amounts,
        metavar="A,A,...",
        help="amounts of iterations 1, 2, ...; the run ends with the schedule",
    )
    p.add_argument(
        "--scope",
        choices=("per_group", "global"),
        help="global (default): one ranking across layers; per_group: each layer loses the "
        "same fraction (then --flops-reg defaults to 0)",
    )
    p.add_argument(
        "--ranking-batches", type=int, metavar="N", help="batches per ranking (default 10)"
    )
    p.add_argument(
        "--flops-reg",
        type=real(0.0, 1000.0),
        metavar="LAMBDA",
        help="cost regularisation lambda (default 0.1; 0 = off; costs are scaled to [0, 1])",
    )
    p.add_argument(
        "--cost",
        choices=COSTS,
        help="what --flops-reg charges per channel (default flops; latency = each layer timed "
        "on this machine)",
    )
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_const",
        const=False,
        help="skip the per-layer L2 normalisation of scores",
    )
    p.add_argument(
        "--round-to",
        type=int,
        metavar="N",
        help="keep multiples of N channels per layer (overrides --widths measured)",
    )
    p.add_argument(
        "--widths",
        choices=("any", "measured"),
        help="'measured': move each pruned layer's width (by at most 12.5%%) to the widest of "
        "the fastest widths on its latency staircase, timed on this machine and cached; "
        "default: measured with a latency target, else any",
    )
    p.add_argument(
        "--grouped",
        choices=("within", "whole"),
        help="how grouped convs (ResNeXt, RegNet) lose channels: 'within' every group, keeping "
        "the group count (default), or 'whole' groups",
    )
    p.add_argument(
        "--min-channels", type=int, metavar="N", help="keep at least N channels per layer"
    )
    p.add_argument(
        "--max-layer-fraction",
        type=real(),
        metavar="F",
        help="one iteration removes at most F of any layer's channels (default: 2.5 times "
        "the iteration's share, 0.25 at --amount 0.1)",
    )
    sel = parser.add_argument_group("layer selection")
    sel.add_argument(
        "--include",
        action="append",
        metavar="PATTERN",
        help="only prune layers matching this fnmatch pattern (repeatable)",
    )
    sel.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERN",
        help="never prune layers matching this pattern (repeatable)",
    )
    sel.add_argument(
        "--layer-type",
        action="append",
        dest="layer_types",
        metavar="TYPE",
        help="only prune layers of this class, e.g. Conv2d, Linear; 'conv' = every "
        "convolution (the default, unless --include/--layers select) (repeatable)",
    )
    sel.add_argument(
        "--layers",
        type=lambda s: tuple(x for x in s.split(",") if x),
        metavar="A,B,...",
        help="only prune exactly these layers",
    )
    ft = parser.add_argument_group("finetuning")
    budget = ft.add_mutually_exclusive_group()
    budget.add_argument(
        "--finetune-steps", type=int, metavar="N", help="steps per iteration (default 100)"
    )
    budget.add_argument(
        "--finetune-epochs", type=int, metavar="N", help="epochs per iteration (default: steps)"
    )
    ft.add_argument(
        "--final-finetune",
        type=int,
        metavar="N",
        help="finetune the final model N more steps (or epochs); default without any "
        "finetuning flag: one pass over the training data; with one: none",
    )
    ft.add_argument(
        "--final-lr",
        type=real(),  # > 0 is checked with the baseline's settings (Optimizer.final_lr)
        metavar="LR",
        help="the final finetuning starts at LR and decays to 0 along a cosine "
        "(default: the baseline's training rate)",
    )
    add_training_args(parser, inherit=True)
    stop = parser.add_argument_group("stop conditions")
    stop.add_argument(
        "--max-iterations", type=int, metavar="N", help="default 10; no limit with a --target"
    )
    stop.add_argument(
        "--max-pruned-fraction",
        type=real(),
        metavar="F",
        help="never remove more than F of the prunable channels (default 0.9)",
    )
    stop.add_argument(
        "--target",
        action="append",
        dest="targets",
        metavar="GOAL",
        help="stop when met: macs=-50%% (a reduction), latency=-60%% (2.5x faster on this "
        "machine), params<=1.5M, size<=2 (MB), latency<=8 (ms per call); repeatable, all must "
        "hold",
    )
    stop.add_argument("--metric", help="metric watched by the floor (default: the task's)")
    stop.add_argument(
        "--metric-floor",
        type=real(),
        metavar="V",
        help="stop below V and keep the last model above it",
    )
    stop.add_argument(
        "--max-metric-drop",
        type=real(0.0),
        metavar="D",
        help="stop when the metric is D worse than the original",
    )
    stop.add_argument(
        "--recovery",
        type=int,
        metavar="N",
        help="before stopping on the metric, finetune the iteration up to N more times",
    )
    collapse = stop.add_mutually_exclusive_group()
    collapse.add_argument(
        "--collapse-ratio",
        type=real(),
        metavar="R",
        help="without a floor or drop bound, stop (failed) when the metric falls below R x "
        "its starting value (default 0.5)",
    )
    collapse.add_argument(
        "--allow-collapse",
        action="store_true",
        help="no collapse guard: go on whatever the metric does",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--run-dir",
        type=Path,
        default=Path("runs/prune"),
        help="checkpoint folder (default runs/prune)",
    )
    run.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    run.add_argument("--latency", action="store_true", help="measure latency every iteration")
    add_latency_args(parser)
    add_run_args(parser, run)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace("x", ",").split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers such as 1,8, got {text!r}") from None


def add_latency_args(parser: argparse.ArgumentParser) -> None:
    """Flags of PruneConfig.latency; any of them turns on --latency."""
    lat = parser.add_argument_group("latency (each implies --latency)")
    lat.add_argument(
        "--latency-batch-sizes",
        type=batch_sizes,
        nargs="+",
        action=FlatList,
        metavar="B",
        help="batch sizes, 1,16 or 1 16 (default 1); the first is the one a latency target is "
        "judged at",
    )
    lat.add_argument(
        "--latency-devices",
        type=lambda s: [x for x in s.split(",") if x],
        metavar="DEV,...",
        help="devices to time on (default cpu,cuda; cuda only where present)",
    )
    lat.add_argument(
        "--latency-input-size",
        type=_ints,
        metavar="H,W",
        help="spatial size of the timed input (default: the example input's)",
    )
    lat.add_argument(
        "--latency-threads",
        type=int,
        metavar="N",
        help="CPU threads while timing (default 1: ratios that hold on a busy machine)",
    )
    lat.add_argument(
        "--latency-rounds",
        type=int,
        metavar="N",
        help="alternating rounds of the original and the current model (default 5)",
    )
    lat.add_argument(
        "--latency-repeats",
        type=int,
        metavar="N",
        help="timed calls per model and round (default 10)",
    )


def _latency_settings(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any] | None:
    flags = {
        "batch_sizes": args.latency_batch_sizes,
        "devices": args.latency_devices,
        "input_size": args.latency_input_size,
        "threads": args.latency_threads,
        "rounds": args.latency_rounds,
        "repeats": args.latency_repeats,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    return {**data.get("latency", {}), **flags} if flags else None


def build_config(args: argparse.Namespace, task: Any) -> PruneConfig:
    """A PruneConfig from --config (if any) with the given flags on top."""
    data: dict[str, Any] = {}  # the config's defaults are the default recipe
    if args.config is not None:  # nested (sections) or flat names; both read as flat names
        text = read_text(args.config, what="--config")
        parsed = PruneConfig.from_json(text, source=str(args.config)).to_flat_dict()
        given = flat_names(json.loads(text))
        data.update({k: parsed[k] for k in given})
    flags = flag_values(args, data)
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.allow_collapse:
        data["collapse_ratio"] = None
    if data.get("metric") is None and task is not None:  # bounds and the collapse guard watch it
        data["metric"] = task.primary_metric
        data["higher_is_better"] = task.higher_is_better
    source = f"--config {args.config} and flags" if args.config else "flags"
    try:
        return PruneConfig.from_dict(data, source=source)
    except ConfigError as exc:
        raise ConfigError(_name_flags(str(exc))) from None


#: Settings with no flag of their own, and why: set them with --config.
CONFIG_ONLY = {
    "bins": "per-width fractions are a list of pairs: --config",
    "higher_is_better": "the task's (with --metric of the task)",
}


def flag_values(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """Every setting of :class:`PruneConfig` by its flat name, as the flags give it (``None``:
    not given); ``tests/cli`` checks that it names every setting but :data:`CONFIG_ONLY`."""
    unit = "epochs" if args.finetune_epochs is not None else None
    return {
        "criterion": args.criterion,
        "criterion_options": dict(args.criterion_arg) if args.criterion_arg else None,
        "amount": args.amount,
        "schedule": args.schedule,
        "scope": args.scope,
        "ranking_batches": args.ranking_batches,
        "flops_reg": args.flops_reg,
        "cost": args.cost,
        "normalize": args.normalize,
        "round_to": args.round_to,
        "widths": args.widths,
        "grouped": args.grouped,
        "min_channels": args.min_channels,
        "max_layer_fraction": args.max_layer_fraction,
        "include": args.include,
        "exclude": args.exclude,
        "layer_types": args.layer_types,
        "layers": args.layers,
        "finetune": args.finetune_epochs if unit else args.finetune_steps,
        "finetune_unit": unit or ("steps" if args.finetune_steps is not None else None),
        "final_finetune": args.final_finetune,
        "max_iterations": args.max_iterations,
        "max_pruned_fraction": args.max_pruned_fraction,
        "targets": args.targets,
        "metric": args.metric,
        "metric_floor": args.metric_floor,
        "max_metric_drop": args.max_metric_drop,
        "recovery": args.recovery,
        "collapse_ratio": args.collapse_ratio,
        "measure_latency": True if args.latency or _latency_settings(args, data) else None,
        "latency": _latency_settings(args, data),
        "seed": args.seed,
        "device": args.device,
    }


# PruneConfig fields whose flag is not --FIELD-NAME
FLAGS = {
    "finetune": "--finetune-steps/--finetune-epochs",
    "finetune_unit": "--finetune-steps/--finetune-epochs",
    "targets": "--target",
    "criterion_options": "--criterion-arg",
    "layer_types": "--layer-type",
    "measure_latency": "--latency",
    "latency": "--latency-*",
    "normalize": "--no-normalize",
}


def _name_flags(message: str) -> str:
    """``PruneConfig.amount: ...`` -> ``--amount (PruneConfig.amount): ...``: show the flag."""

    def flag(match: re.Match) -> str:
        name = match[1]
        if name not in FLAT and name not in TOP_LEVEL:  # a section: no flag of its own
            return match[0]
        return f"{FLAGS.get(name, '--' + name.replace('_', '-'))} (PruneConfig.{name})"

    return re.sub(r"PruneConfig\.(\w+)", flag, message)


def optimizer_from(args: argparse.Namespace, saved: dict[str, Any] | None) -> Optimizer:
    """The finetuning optimizer: flags first, then the baseline's (model.json; else the
    defaults) at a tenth of its learning rate."""
    base = Optimizer.from_dict(saved, source=f"{MODEL_JSON} next to --load").for_finetuning()
    flags = {
        "name": args.optimizer,
        "lr": args.lr,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
    }
    return replace(base, **{k: v for k, v in flags.items() if v is not None})


def _final_lr(args: argparse.Namespace, saved: dict[str, Any] | None) -> float:
    """--final-lr, else the rate the baseline was trained with (model.json, else the default);
    checked here, before anything runs."""
    trained = Optimizer.from_dict(saved, source=f"{MODEL_JSON} next to --load")
    return trained.final_lr(args.final_lr)


def _describe(optimizer: Optimizer, args: argparse.Namespace, saved: dict | None) -> str:
    """One line: which optimizer and rate finetune, and where each came from."""
    source = "the baseline's, model.json" if saved else "the default"
    name = "from --optimizer" if args.optimizer is not None else source
    if args.lr is not None:
        rate = "from --lr"
    else:
        trained = Optimizer.from_dict(saved, source=f"{MODEL_JSON} next to --load")
        whose = "the baseline's training rate" if saved else "the default training rate"
        rate = f"a tenth of {whose} {trained.lr:g}; --lr sets it"
    return f"finetuning with {optimizer.name} ({name}) at lr={optimizer.lr:g} ({rate})"


def _check_devices(devices: list[str]) -> None:
    """Explicit --latency-devices must exist here (the default skips CUDA where there is none)."""
    for name in devices:
        try:
            device(name)
        except argparse.ArgumentTypeError as exc:
            raise CLIError(f"--latency-devices: {exc}; nothing would be timed there") from None


def run(args: argparse.Namespace) -> int:
    if args.latency_devices:
        _check_devices(args.latency_devices)
    main_process = join_torchrun(args)  # under torchrun: one copy per rank, rank 0 writes
    info = model_info(args, args.load)
    task_name = args.task or info.get("task")
    if task_name is None:
        raise CLIError("--task is required (classify, segment or detect); no model.json names it")
    # one process writes a run folder at a time: the lock is held until the report is written,
    # and a failure before the first checkpoint leaves no folder behind
    with (
        discard_on_error(
            Path(args.run_dir),
            kept=lambda: not main_process or RunDir(args.run_dir).exists(),
        ),
        run_lock(args.run_dir, enabled=main_process),
    ):
        return _run_locked(args, info, task_name, main_process)


def _say_what_resume_continues(args: argparse.Namespace) -> None:
    """A warning when ``--resume`` has no run to continue: a mistyped --run-dir would otherwise
    start a long run from scratch unnoticed."""
    if not RunDir(args.run_dir).exists():
        logging.getLogger("filterprune").warning(
            "--resume: --run-dir %s holds no run to continue (no state.json there); starting a "
            "new run in it. If you meant an existing run, stop now (Ctrl-C) and check the path",
            args.run_dir,
        )


def _run_locked(
    args: argparse.Namespace, info: dict[str, Any], task_name: str, main_process: bool
) -> int:
    check_run_dir(args.run_dir, resume=args.resume)
    if args.resume and main_process:
        _say_what_resume_continues(args)
    # the data split follows model.json (the baseline's split); --seed seeds the pruning
    split_seed = None if info.get("data") else (args.seed or 0)
    data = load_data(args, task_name, seed=split_seed, saved=info.get("data"))
    config = with_final_pass(build_config(args, data.task), data.train_loader)
    optimizer = optimizer_from(args, info.get("training"))
    final_lr = _final_lr(args, info.get("training"))
    say(args, _describe(optimizer, args, info.get("training")))
    final = config.budget(final=True)
    if final.amount:
        pass_ = " (one pass over the training data)" if args.final_finetune is None else ""
        say(args, f"final finetuning: {final}{pass_} from lr={final_lr:g}, decaying to 0 "
            "along a cosine (--final-finetune, --final-lr)")  # fmt: skip
    say(args, f"pruning {info['model']} with {config.criterion}; checkpoints in {args.run_dir}")
    result = prune_saved(
        args.load,
        run_dir=args.run_dir,
        config=config,
        data=data,
        model=info["model"],
        model_args=info["model_args"],
        task=task_name,
        optimizer=optimizer,
        final_lr=final_lr,
        channel_txt=args.channel_txt,
        spec=args.spec,
        resume=args.resume,
        progress=not args.quiet,
        trust_code=trust(args),
    )
    if not main_process:  # the run is over on every rank; rank 0 writes and prints the rest
        return 0
    from ..report import to_markdown
    from ..report.run_report import write_run_report

    tables = write_run_report(args.run_dir, plots=False)  # figures: filterprune report
    for table in tables.tables().values():
        print(to_markdown(table))
    print(
        f"\nstopped: {result.stop_message}; final model from iteration {result.best_iteration}"
        f" in {args.run_dir} (load it with 'filterprune eval --load {args.run_dir}')"
    )
    if result.stop_detail:  # a NaN/inf finetuning or targets not reached: exit non-zero
        detail = result.stop_detail.rstrip(".")
        if result.stop_reason == "non_finite":
            raise CLIError(
                f"finetuning diverged ({detail}); {args.run_dir} keeps iteration "
                f"{result.best_iteration}, the last good model: lower --lr (now {optimizer.lr:g}) "
                "and continue with --resume"
            )
        if result.stop_reason == "metric_collapse" or "collapsed" in detail:
            raise CLIError(
                f"{detail}; {args.run_dir} keeps iteration {result.best_iteration}: finetune "
                "more (--finetune-steps), remove less per iteration (--amount, "
                "--max-layer-fraction), or set a bound (--max-metric-drop) or --allow-collapse"
            )
        raise CLIError(
            f"{detail} (the run stopped: {result.stop_message}); relax --target or allow more "
            "pruning with --max-pruned-fraction / --max-iterations"
        )
    return 0
