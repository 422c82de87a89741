"""``filterprune eval``: metrics, parameters, MACs, size (and latency) of a saved model."""

from __future__ import annotations

import argparse
import json
import math
import shlex

from ..recipes import compare_saved, evaluate_saved
from ..recipes.eval import RUNTIME_NAMES, compare_descriptions
from ._args import (
    CLIError,
    FlatList,
    add_model_args,
    add_widths_args,
    batch_sizes,
    device,
    existing_path,
    model_info,
    trust,
)
from ._data import add_data_args, load_data

NAME = "eval"
HELP = "evaluate a saved or pruned model on built-in or folder data"
DESCRIPTION = (
    "Rebuild a saved model (original architecture + plan.json + weights.safetensors; a run "
    "folder gives its final model) and print the task metrics on the validation data, with "
    "parameters, MACs (for one input), checkpoint size and optionally latency. With --compare "
    "ORIGINAL both models are evaluated on the same data and, with --latency, timed side by "
    "side in alternating rounds in this process (same threads and inputs): both latencies "
    "and the speed-up with the range of its round ratios. Each of the two is rebuilt from its "
    "own model.json (or its run folder's), so they may be different architectures of the same "
    "task and inputs; one without a model.json is rebuilt like the other; --model, "
    "--model-arg and --task apply to both."
)
EXAMPLES = [
    "filterprune eval --load runs/vgg-pruned",
    "filterprune eval --load runs/vgg-pruned/iter_002 --latency --json",
    "filterprune eval --load runs/fm-pruned --split test   # the t10k file, once, at the end",
    "filterprune eval --compare runs/vgg-pruned/iter_000 --load runs/vgg-pruned --latency "
    "--batch-sizes 1,16 --threads 2 --rounds 7",
    "filterprune eval --load model.safetensors --model unet --model-arg base=16 --task segment "
    "--data ./carvana",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--load",
        type=existing_path,
        required=True,
        metavar="MODEL",
        help="checkpoint folder, run folder or .safetensors file",
    )
    add_model_args(parser)
    add_widths_args(parser)
    add_data_args(parser, required=False)
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="what to evaluate on: the validation split (default; what train and prune use) or "
        "the test split, which train and prune never read: a classify folder's test/ or the "
        "t10k file of MNIST-format data",
    )
    parser.add_argument(
        "--compare",
        type=existing_path,
        default=None,
        metavar="ORIGINAL",
        help="A/B: also evaluate this model (e.g. the baseline) and compare --load with it; "
        "each is rebuilt from its own model.json",
    )
    parser.add_argument("--latency", action="store_true", help="also time a forward pass")
    timing = parser.add_argument_group("timing (--latency)")
    timing.add_argument(
        "--batch-sizes",
        "--latency-batch-sizes",
        dest="batch_sizes",
        type=batch_sizes,
        nargs="+",
        action=FlatList,
        default=[1],
        metavar="N",
        help="batch sizes to time, space- or comma-separated: 1 16 or 1,16 (default 1); "
        "--latency-batch-sizes, prune's name, is the same flag",
    )
    timing.add_argument(
        "--threads", type=int, default=1, help="default 1: ratios that hold on a busy machine"
    )
    timing.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds with --compare (default 5)"
    )
    timing.add_argument(
        "--runtime",
        nargs="+",
        choices=("eager", "onnxruntime"),
        default=["eager"],
        help="with --compare: time in eager PyTorch (default) and/or onnxruntime (both models "
        "exported to ONNX; needs the onnx extra), each side by side",
    )
    timing.add_argument(
        "--repeats", type=int, default=10, help="timed calls per model and round (default 10)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda, ...")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the data split (default: model.json's, or 0)",
    )


def run(args: argparse.Namespace) -> int:
    from .. import report

    if args.runtime != ["eager"] and args.compare is None:
        raise CLIError(
            "--runtime times two models side by side: give the reference with --compare ORIGINAL"
        )
    if args.compare is not None:  # each model from its own model.json; data from --load's
        _, info = compare_descriptions(
            args.compare, args.load, model=args.model, model_args=_model_args(args),
            task=args.task, trust_code=trust(args),
        )  # fmt: skip
    else:
        info = model_info(args, args.load)
    task_name = args.task or info.get("task")
    if task_name is None:
        raise CLIError("--task is required (classify, segment or detect); no model.json names it")
    data = load_data(args, task_name, seed=args.seed, saved=info.get("data"))
    if args.compare is not None:
        return _compare(args, data)
    out = evaluate_saved(
        args.load,
        data=data,
        model=info["model"],
        model_args=info["model_args"],
        task=task_name,
        channel_txt=args.channel_txt,
        spec=args.spec,
        latency=args.latency,
        device=args.device,
        trust_code=trust(args),
    )
    _check_finite(args.load, out["metrics"])
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    table = report.iteration_table([{"iteration": str(args.load), **out}])
    keep = {"iteration", "params", "macs", "size_mb", "latency_ms"}
    keep |= {k for k in table.keys if k.startswith("metric:")}
    table.columns = [
        c for c in table.columns if c.key in keep and (c.key != "latency_ms" or args.latency)
    ]
    table.columns[0] = report.Column("iteration", "Model", "text")
    table.title, table.notes = "Evaluation", []
    print(report.to_markdown(table))
    return 0


def _check_finite(load: object, metrics: dict) -> None:
    """A NaN/inf metric is an error naming the model (never ``NaN`` in the JSON output)."""
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise CLIError(
            f"--load {load}: metric {bad[0]!r} is {metrics[bad[0]]} (the model outputs NaN "
            "or inf on the validation data); the checkpoint is not usable: evaluate an earlier "
            "one or retrain"
        )


def _model_args(args: argparse.Namespace) -> dict | None:
    return dict(args.model_arg) if args.model_arg else None


def _compare(args: argparse.Namespace, data: object) -> int:
    from .. import report

    out = compare_saved(
        args.compare,
        args.load,
        data=data,
        model=args.model,
        model_args=_model_args(args),
        task=args.task,
        channel_txt=args.channel_txt,
        spec=args.spec,
        latency=args.latency or args.runtime != ["eager"],
        batch_sizes=tuple(args.batch_sizes),
        threads=args.threads,
        rounds=args.rounds,
        repeats=args.repeats,
        device=args.device,
        trust_code=trust(args),
        runtimes=tuple(dict.fromkeys(args.runtime)),
    )
    _check_finite(args.compare, out["original"]["metrics"])
    _check_finite(args.load, out["model"]["metrics"])
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    first = (out.get("latency") or [{}])[0]
    rows = [
        {"iteration": f"original: {args.compare}", **out["original"]},
        {"iteration": f"model: {args.load}", **out["model"]},
    ]
    if first:
        rows[0].update(
            latency_ms=first["original_median_ms"], latency_iqr_ms=first["original_iqr_ms"]
        )
        rows[1].update(
            latency_ms=first["median_ms"],
            latency_iqr_ms=first["iqr_ms"],
            speedup=first["speedup"],
            speedup_low=first["speedup_low"],
            speedup_high=first["speedup_high"],
            latency_flags=first["flags"],
            floor_speedup=first.get("floor_speedup"),
        )
    table = report.iteration_table(rows, retime=_rerun(args))  # this command, paths and all
    drop = {"ranking_batches", "removed", "removed_total", "finetune", "original_latency_ms"}
    table.columns = [c for c in table.columns if c.key not in drop]
    if not first:
        table.columns = [
            c for c in table.columns if "latency" not in c.key and "speedup" not in c.key
        ]
        table.columns = [c for c in table.columns if c.key != "efficiency"]
    table.columns[0] = report.Column("iteration", "Model", "text")
    table.title = "A/B comparison"
    print(f"A/B comparison: {args.load} against {args.compare}\n")
    print(report.to_markdown(table))
    for key, runtime in (("latency", "eager"), ("onnxruntime_latency", "onnxruntime")):
        label = RUNTIME_NAMES[runtime]
        if out.get(key):
            timing = report.latency_table([{"iteration": f"{label}: model vs original",
                                            "latency": out[key]}])  # fmt: skip
            print(report.to_markdown(timing))
    for record in out.get("latency") or ():
        if record.get("floor_speedup"):
            print(
                f"note: batch {record['batch_size']}: the machine was busy "
                f"({', '.join(record['flags'])}); each model's fastest block that no other "
                f"process interrupted gives {record['floor_speedup']:.2f}x; for a figure to "
                f"trust, {_rerun(args)}"
            )
    if "runtimes_disagree" in out:
        for entry in out["runtimes_disagree"]:
            print(f"note: {entry['text']}")
        if not out["runtimes_disagree"]:
            print("eager PyTorch and onnxruntime agree: at no batch size is the model faster "
                  "in one and slower in the other")  # fmt: skip
    return 0


def _rerun(args: argparse.Namespace) -> str:
    return (
        f"run the same command again when the machine is idle ({_again(args)}), or with more "
        f"rounds (--rounds {2 * args.rounds})"
    )


def _again(args: argparse.Namespace) -> str:
    """This eval command, from its parsed flags (those not at their default), paths included."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    words = ["filterprune", NAME]
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:  # --latency, --json, ...: a switch
            words.append(flag)
        elif action.dest in ("model_arg", "data_arg"):
            for key, item in value:
                text = item if isinstance(item, str) else json.dumps(item)
                words += [flag, f"{key}={text}"]
        elif isinstance(value, list | tuple):
            words += [flag, *(str(v) for v in value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)
