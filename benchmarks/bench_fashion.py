"""Fashion-MNIST evidence: baselines, criteria at equal MACs, and the default recipe.

Everything runs through the installed ``filterprune`` command, as a user would run it:

* ``baselines``: ``filterprune train`` for VGG16-BN (width 0.5, CIFAR head, 28 px padded to 32)
  and ResNet-18 (CIFAR stem, width 0.5, 28 px), one grayscale channel, on ``--limit`` training
  images; cached under ``--cache-dir`` (git-ignored) and reused.
* ``default``: ``filterprune prune --load BASE --target macs=-75%`` (and ``-90%``) with nothing
  else set but the data flags (``--limit``, ``--seed``): the default recipe.
* ``criteria``: the same command with ``--criterion NAME`` (and the other listed flags), same
  finetuning budget, paired by seed with the default runs.

The loop validates on ``--val-fraction`` of the Fashion-MNIST training file (the baseline's split,
read back from its model.json); the reported accuracy is on the 10 000-image ``t10k`` test file,
which no decision of the loop sees: this script evaluates each final model on it afterwards.
Latency of baseline and pruned model is measured side by side (alternating rounds, one
process) at batch 1 and 16 with :func:`filterprune.report.measure_latency`.

Results go to ``benchmarks/results/fashion.json``, one entry per run, written after each run, so
an interrupted benchmark resumes where it stopped (a run folder left half-done is resumed with
``--resume``). Needs the Debian package ``dataset-fashion-mnist`` (or ``--data DIR``)::

    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/bench_fashion.py --stage baselines
    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/bench_fashion.py --stage default
    PYTHONPATH=src nice -n 5 .venv/bin/python benchmarks/bench_fashion.py --stage criteria
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "fashion.json"

MODELS: dict[str, dict[str, Any]] = {
    "vgg": {
        "model": "vgg16_bn",
        "model_args": ["width=0.5", "head=cifar"],
        "image_size": 32,
        "train": ["--epochs", "2"],
    },
    "resnet": {
        "model": "resnet18",
        "model_args": ["width=0.5", "stem=cifar"],
        "image_size": 28,
        "train": ["--epochs", "2"],
    },
}
# criteria compared with the default recipe: name -> extra prune flags
CRITERIA: dict[str, list[str]] = {
    "l1": ["--criterion", "l1"],
    "random": ["--criterion", "random"],
    "bn_scale": ["--criterion", "bn_scale"],
    "taylor_noreg": ["--criterion", "taylor", "--flops-reg", "0"],
    "weight_taylor": ["--criterion", "weight_taylor"],
}


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)  # the filterprune of PYTHONPATH / the environment
    return env


def _cli(args: list[str], *, threads: int, log: Path) -> tuple[int, float, str]:
    """Run ``filterprune ARGS``; returns (exit code, wall seconds, last lines of output)."""
    command = [sys.executable, "-m", "filterprune", *args]
    print("$ filterprune " + " ".join(args), flush=True)
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write("$ filterprune " + " ".join(args) + "\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=_env(threads))
    seconds = time.perf_counter() - start
    tail = log.read_text().splitlines()[-6:]
    return code, round(seconds, 1), "\n".join(tail)


def _read_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}


def _write_results(results: dict[str, Any]) -> None:
    results["environment"] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


def _load(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    from filterprune.loop import load
    from filterprune.models import create_model

    info = json.loads((folder / "model.json").read_text())
    model = load(folder, lambda: create_model(info["model"], **info["model_args"]))
    return model.eval(), info


def _test_split(info: dict[str, Any], data: str):
    from filterprune.tasks.idx import IDXConfig, idx_datasets

    settings = info["data"]
    config = IDXConfig(
        image_size=settings["image_size"],
        val_fraction=settings["val_fraction"],
        seed=settings["seed"],
        **settings.get("data_args", {}),
    )
    return idx_datasets(data, config)[2]


def _measure(folder: Path, data: str) -> dict[str, Any]:
    """Test accuracy, MACs, params and the narrowest layer of the model saved in ``folder``."""
    from torch.utils.data import DataLoader

    from filterprune.loop import layer_widths
    from filterprune.report import count
    from filterprune.tasks import get_task

    model, info = _load(folder)
    test = _test_split(info, data)
    metrics = get_task("classify").evaluate(model, DataLoader(test, batch_size=200))
    example = test[0][0].unsqueeze(0)
    counts = count(model, example)
    widths = layer_widths(model)
    convs = {k: v for k, v in widths.items() if "classifier" not in k and "fc" not in k}
    narrow = min(convs.items(), key=lambda kv: kv[1]) if convs else None
    return {
        "test_accuracy": round(100 * metrics["accuracy"], 2),
        "macs": counts.macs,
        "params": counts.params,
        "narrowest_layer": list(narrow) if narrow else None,
    }


def _latency(base: Path, pruned: Path, data: str, *, rounds: int, threads: int) -> dict[str, Any]:
    """Alternating rounds, baseline then pruned, in this process; median of round medians."""
    from filterprune.report import measure_latency

    models = {"baseline": _load(base)[0], "pruned": _load(pruned)[0]}
    info = json.loads((base / "model.json").read_text())
    example = torch.zeros(info["input_shape"])
    times: dict[str, dict[int, list[float]]] = {k: {1: [], 16: []} for k in models}
    for _ in range(rounds):
        for key, model in models.items():
            for r in measure_latency(model, example, batch_sizes=(1, 16), threads=threads):
                times[key][r.batch_size].append(r.median_ms)
    out: dict[str, Any] = {"threads": threads, "rounds": rounds, "loadavg": os.getloadavg()}
    for batch in (1, 16):
        b = statistics.median(times["baseline"][batch])
        p = statistics.median(times["pruned"][batch])
        out[f"batch{batch}"] = {"baseline_ms": round(b, 3), "pruned_ms": round(p, 3)}
        out[f"batch{batch}"]["speedup"] = round(b / p, 3)
    return out


def baselines(args: argparse.Namespace) -> None:
    results = _read_results()
    for key in args.models:
        spec, folder = MODELS[key], args.cache_dir / f"{key}-base"
        name = f"baseline/{key}"
        if name in results["runs"] and (folder / "model.json").is_file():
            continue
        cmd = ["train", "--task", "classify", "--model", spec["model"]]
        for arg in spec["model_args"]:
            cmd += ["--model-arg", arg]
        cmd += [
            "--data", args.data, "--image-size", str(spec["image_size"]),
            "--val-fraction", str(args.val_fraction), "--limit", str(args.limit),
            "--batch-size", "32", "--lr", "0.02", "--weight-decay", "5e-4",
            *spec["train"], "--out", str(folder), "--quiet",
        ]  # fmt: skip
        code, seconds, tail = _cli(cmd, threads=args.threads, log=args.cache_dir / "log.txt")
        if code != 0:
            raise SystemExit(f"baseline {key} failed:\n{tail}")
        entry = {"command": "filterprune " + " ".join(cmd), "wall_seconds": seconds}
        entry["validation"] = json.loads((folder / "metrics.json").read_text())["metrics"]
        entry.update(_measure(folder, args.data))
        results = _read_results()
        results["runs"][name] = entry
        _write_results(results)
        print(name, entry, flush=True)


def _prune_run(args: argparse.Namespace, key: str, label: str, extra: list[str], target: int,
               seed: int) -> None:  # fmt: skip
    name = f"{label}/{key}/macs-{target}/seed{seed}"
    results = _read_results()
    if name in results["runs"]:
        return
    base = args.cache_dir / f"{key}-base"
    run_dir = args.cache_dir / "runs" / name.replace("/", "_")
    cmd = ["prune", "--load", str(base), "--target", f"macs=-{target}%", *extra]
    cmd += ["--seed", str(seed), "--limit", str(args.limit), "--run-dir", str(run_dir), "--quiet"]
    # a deeper target continues the shallower run: every iteration reseeds from (seed,
    # iteration), so resuming with a new target replays exactly what a fresh run would do
    shallower = [t for t in args.targets if t < target]
    source = run_dir.parent / run_dir.name.replace(f"macs-{target}", f"macs-{max(shallower)}") \
        if shallower else None  # fmt: skip
    if not run_dir.exists() and source is not None and (source / "state.json").is_file():
        shutil.copytree(source, run_dir)
    if (run_dir / "state.json").is_file():
        cmd.append("--resume")
    code, seconds, tail = _cli(cmd, threads=args.threads, log=args.cache_dir / "log.txt")
    entry: dict[str, Any] = {
        "command": "filterprune " + " ".join(c for c in cmd if c != "--resume"),
        "exit_code": code,
        "wall_seconds": seconds,
        "output_tail": tail,
    }
    state = run_dir / "state.json"
    if state.is_file():
        saved = json.loads(state.read_text())
        entry["stop_reason"] = saved.get("stop_reason")
        rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        entry["iterations"] = max(r["iteration"] for r in rows if isinstance(r["iteration"], int))
        entry["validation"] = [
            {"iteration": r["iteration"], "accuracy": r["metrics"].get("accuracy"),
             "macs": r["macs"], "accepted": r.get("accepted")}
            for r in rows
        ]  # fmt: skip
        entry.update(_measure(run_dir, args.data))
        entry["macs_ratio"] = round(results["runs"][f"baseline/{key}"]["macs"] / entry["macs"], 3)
        if args.latency_rounds:
            entry["latency"] = _latency(
                base, run_dir, args.data, rounds=args.latency_rounds, threads=args.threads
            )
    results = _read_results()
    results["runs"][name] = entry
    _write_results(results)
    print(name, {k: entry.get(k) for k in ("test_accuracy", "macs_ratio", "wall_seconds")})


def table(results: dict[str, Any]) -> str:
    """Markdown rows of every pruning run, against its baseline's test accuracy."""
    runs = results["runs"]
    lines = [
        "| run | test acc. % | drop (points) | MACs | fewer MACs | narrowest conv | "
        "speed-up b1 / b16 | efficiency b1 / b16 | stop | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in sorted(runs.items()):
        if name.startswith("baseline/") or "test_accuracy" not in entry:
            continue
        base = runs[f"baseline/{name.split('/')[1]}"]
        drop = base["test_accuracy"] - entry["test_accuracy"]
        lat = entry.get("latency") or {}
        speed = [lat.get(f"batch{b}", {}).get("speedup") for b in (1, 16)]
        eff = [round(s / entry["macs_ratio"], 2) if s else None for s in speed]
        narrow = entry.get("narrowest_layer") or ["-", "-"]
        lines.append(
            f"| {name} | {entry['test_accuracy']:.2f} | {drop:+.2f} | {entry['macs'] / 1e6:.1f} M "
            f"| {entry['macs_ratio']:.2f}x | {narrow[0]}: {narrow[1]} | "
            f"{speed[0] or '-'} / {speed[1] or '-'} | {eff[0] or '-'} / {eff[1] or '-'} | "
            f"{entry.get('stop_reason')} | {entry['wall_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stage", choices=("baselines", "default", "criteria", "table"), required=True
    )
    parser.add_argument("--models", type=lambda s: s.split(","), default=["vgg", "resnet"])
    parser.add_argument("--targets", type=lambda s: [int(x) for x in s.split(",")],
                        default=[75, 90])  # fmt: skip
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    parser.add_argument("--criteria", type=lambda s: s.split(","), default=list(CRITERIA))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--limit", type=int, default=12000, help="training images per run")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=None, help="JSON file of the runs")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / ".cache" / "fashion", help="git-ignored"
    )
    args = parser.parse_args()
    if args.results is not None:
        global RESULTS
        RESULTS = args.results
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    if args.stage == "baselines":
        baselines(args)
        return
    if args.stage == "table":
        print(table(_read_results()))
        return
    for seed in args.seeds:
        for key in args.models:
            for target in args.targets:
                if args.stage == "default":
                    _prune_run(args, key, "default", [], target, seed)
                else:
                    for crit in args.criteria:
                        _prune_run(args, key, crit, CRITERIA[crit], target, seed)


if __name__ == "__main__":
    main()
