"""Fashion-MNIST evidence: baselines, the default recipe, and criteria at equal MACs.

Everything but the final test evaluation runs through the ``filterprune`` command, as a user
would run it (``python -m filterprune`` of the interpreter running this script):

* ``probe``: times ``filterprune train`` for 0 and ``--probe-steps`` steps of each model (the
  difference is the cost of a training step on this machine), so that ``baselines`` can turn a
  wall-time budget into a number of steps.
* ``baselines``: ``filterprune train`` for VGG16-BN (width 0.5, CIFAR head, 28 px padded to 32)
  and ResNet-18 (CIFAR stem, width 0.5, 28 px), one grayscale channel, for as many steps as
  ``--budget-minutes`` allows by the probe (or ``--train-steps``); one baseline per model,
  cached under ``--cache-dir`` and reused.
* ``default``: ``filterprune prune --load BASE --target macs=-75%`` (and ``-90%``) with nothing
  else set but ``--seed`` and the run folder: the default recipe.
* ``criteria``: the same command with ``--criterion NAME`` (and the listed flags), the same
  finetuning budget, paired by seed with the default runs.
  ``--criteria`` also takes the VARIANTS of the default recipe (``lr_train``: finetuning at
  the baseline's training rate, 1e-3, the default before it became a tenth of it;
  ``reg0.03`` / ``reg0.3``: another cost-term lambda; ``cost_params`` / ``cost_memory``:
  another cost charged by the cost term) and two controls that prune one filter
  and then finetune the baseline as long as a -75 % VGG run (``control`` at the default rate,
  ``control_lr_train``).
* ``torch_pruning``: Torch-Pruning's Taylor and magnitude (L1) importance (benchmark-only, never
  a filterprune dependency: ``pip install --no-deps torch-pruning==1.6.1``), global over the
  convs with at most 25 % of a layer per iteration, pruned down to the MACs of the default run
  of the same model, target and seed after each of its iterations, finetuned in between by
  filterprune's trainer with the same steps and optimizer, evaluated the same way.
* ``table``: the per-run table and the summary (mean +- std over seeds, paired differences).

``--seed`` is a *pruning* seed (ranking batches, finetuning order, the random and kmeans
criteria's draws); every
run of one seed starts from the same baseline, so runs of one seed are paired across criteria.
The loop validates on ``--val-fraction`` of the Fashion-MNIST training file (the baseline's
split, read back from its model.json); the reported accuracy is on the 10 000-image ``t10k``
file, which no decision of the loop sees: this script evaluates each final model on it
afterwards. Baseline and pruned model are timed side by side (alternating rounds, one process)
at batch 1 and 16 with :func:`filterprune.measure.compare_latency`.

Results go to ``benchmarks/results/fashion.json``, one entry per run, written after each run, so
an interrupted benchmark resumes where it stopped (a half-done run folder is resumed with
``--resume``). A -90 % run continues a copy of the -75 % run folder with ``--resume`` (every
iteration reseeds from (seed, iteration), so this replays what a fresh -90 % run does). Needs the
Debian package ``dataset-fashion-mnist`` (or ``--data DIR``)::

    B="nice -n 5 .venv/bin/python benchmarks/bench_fashion.py --cache-dir /work/cache/fashion"
    PYTHONPATH=src $B --stage probe
    PYTHONPATH=src $B --stage baselines --budget-minutes 12
    PYTHONPATH=src $B --stage default --seeds 0,1,2
    PYTHONPATH=src $B --stage criteria --seeds 0,1,2 --targets 75,90
    PYTHONPATH=src $B --stage torch_pruning --seeds 0,1,2 --targets 75,90
    PYTHONPATH=src $B --stage table
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "fashion.json"

MODELS: dict[str, dict[str, Any]] = {
    "vgg": {"model": "vgg16_bn", "model_args": ["width=0.5", "head=cifar"], "image_size": 32},
    "resnet": {"model": "resnet18", "model_args": ["width=0.5", "stem=cifar"], "image_size": 28},
}
# the baselines' optimizer: Adam, its rate decayed along a cosine (train's default schedule);
# 'prune' finetunes with Adam at a tenth of the rate (its default, from model.json), at its own
# default batch size of 16
TRAIN = ["--batch-size", "64", "--optimizer", "adam", "--lr", "0.001"]
TRAIN_BATCH = 64
# criteria compared with the default recipe: name -> extra prune flags (all else as the default)
CRITERIA: dict[str, list[str]] = {
    "taylor_noreg": ["--criterion", "taylor", "--flops-reg", "0"],
    "l1": ["--criterion", "l1"],
    "bn_scale": ["--criterion", "bn_scale"],
    "kmeans": ["--criterion", "kmeans"],
    "random": ["--criterion", "random"],
    "weight_taylor": ["--criterion", "weight_taylor"],
}
# the default recipe with one other setting: finetuning rate, cost-term lambda or cost
VARIANTS: dict[str, list[str]] = {
    "lr_train": ["--lr", "0.001"],
    "reg0.03": ["--flops-reg", "0.03"],
    "reg0.3": ["--flops-reg", "0.3"],
    "cost_params": ["--cost", "params"],
    "cost_memory": ["--cost", "memory"],
    # controls: one iteration that removes a single filter, then as many finetuning steps as
    # a -75 % VGG run gets (1 x 100 + 1000 = 8 x 100 + 300); 'prune' refuses --max-iterations 0
    "control": ["--amount", "1", "--max-iterations", "1", "--final-finetune", "1000"],
    "control_lr_train": [
        "--amount",
        "1",
        "--max-iterations",
        "1",
        "--final-finetune",
        "1000",
        "--lr",
        "0.001",
    ],
}
GOALS = {75: (4.0, 0.3), 90: (10.0, 1.5)}  # target -> (min MAC ratio, max test drop in points)


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)  # the filterprune of PYTHONPATH / the environment
    env["OMP_NUM_THREADS"] = str(threads)
    env["FILTERPRUNE_PROGRESS"] = "0"
    return env


def _cli(args: list[str], *, threads: int, log: Path) -> tuple[int, float, str]:
    """Run ``filterprune ARGS``; returns (exit code, wall seconds, last lines of output)."""
    command = [sys.executable, "-m", "filterprune", *args]
    line = "$ filterprune " + " ".join(args)
    print(line, flush=True)
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        out.flush()
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=_env(threads))
    seconds = time.perf_counter() - start
    tail = log.read_text().splitlines()[-6:]
    return code, round(seconds, 1), "\n".join(tail)


def _recovered(cmd: list[str], log: Path, done: Path) -> tuple[int, float, str]:
    """(0, wall seconds, note) of a command that finished but whose entry was never written.

    The start is the command's last line in ``log`` ("HH:MM:SS $ filterprune ..."), the end the
    modification time of ``done`` (the file the command writes last).
    """
    line = "$ filterprune " + " ".join(cmd)
    starts = [t[:8] for t in log.read_text().splitlines() if t.endswith(line)]
    end = time.localtime(done.stat().st_mtime)
    h, m, sec = (int(x) for x in starts[-1].split(":"))
    seconds = (end.tm_hour - h) * 3600 + (end.tm_min - m) * 60 + (end.tm_sec - sec)
    return 0, float(seconds % 86400), f"recorded afterwards: started {starts[-1]} (log.txt)"


def _read_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}


def _write_results(results: dict[str, Any]) -> None:
    results["environment"] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "code": os.environ.get("FASHION_CODE", "working tree"),
    }
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


def _update(key: str, name: str, entry: Any) -> None:
    """Store ``entry`` as ``results[key][name]``, re-reading the file first (under a lock, so
    that two benchmark processes, e.g. one per model, can share one results file)."""
    import fcntl

    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = _read_results()
        if key == "runs":  # the library commit the run used (runs of one file may differ)
            entry = {**entry, "code": os.environ.get("FASHION_CODE", "working tree")}
        results.setdefault(key, {})[name] = entry
        _write_results(results)


def _load(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    from filterprune.models import create_model
    from filterprune.store.load import load

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
    """Test accuracy, MACs, params and the narrowest conv of the model saved in ``folder``."""
    return _measure_model(*_load(folder), data)


def _measure_model(model: torch.nn.Module, info: dict[str, Any], data: str) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from filterprune.loop import layer_widths
    from filterprune.measure import count
    from filterprune.tasks import get_task

    model.eval()
    test = _test_split(info, data)
    metrics = get_task("classify").evaluate(model, DataLoader(test, batch_size=200))
    counts = count(model, test[0][0].unsqueeze(0))
    widths = {k: v for k, v in layer_widths(model).items() if isinstance(
        model.get_submodule(k), torch.nn.Conv2d)}  # fmt: skip
    narrow = min(widths.items(), key=lambda kv: kv[1]) if widths else None
    return {
        "test_accuracy": round(100 * metrics["accuracy"], 2),
        "test_images": len(test),
        "macs": counts.macs,
        "params": counts.params,
        "narrowest_layer": list(narrow) if narrow else None,
    }


def _latency(base: Path, pruned: Path | torch.nn.Module, *, rounds: int, threads: int
             ) -> dict[str, Any]:  # fmt: skip
    """Baseline and pruned model timed side by side (alternating rounds, this process)."""
    from filterprune.measure import compare_latency

    reference, info = _load(base)
    model = pruned if isinstance(pruned, torch.nn.Module) else _load(pruned)[0]
    example = torch.zeros(info["input_shape"])
    out: dict[str, Any] = {"threads": threads, "rounds": rounds, "loadavg": os.getloadavg()}
    comparisons = compare_latency(
        reference, model, example, batch_sizes=(1, 16), rounds=rounds, threads=threads
    )
    for c in comparisons:
        out[f"batch{c.batch_size}"] = {
            "baseline_ms": round(c.reference.median_ms, 3),
            "pruned_ms": round(c.model.median_ms, 3),
            "speedup": round(c.speedup, 3),
            "speedup_range": [round(c.speedup_low, 3), round(c.speedup_high, 3)],
            "flags": list(c.flags),
        }
    out["loadavg_after"] = os.getloadavg()
    return out


def _train_cmd(key: str, args: argparse.Namespace, steps: int, out: Path) -> list[str]:
    spec = MODELS[key]
    cmd = ["train", "--task", "classify", "--model", spec["model"]]
    for arg in spec["model_args"]:
        cmd += ["--model-arg", arg]
    cmd += ["--data", args.data, "--image-size", str(spec["image_size"])]
    cmd += ["--val-fraction", str(args.val_fraction), *TRAIN, "--steps", str(steps)]
    return [*cmd, "--out", str(out), "--quiet"]


def probe(args: argparse.Namespace) -> None:
    """Seconds per training step: a 0-step and an N-step run (same start-up and evaluation)."""
    for key in args.models:
        times = []
        for steps in (0, args.probe_steps):
            out = args.cache_dir / f"probe-{key}"
            cmd = [*_train_cmd(key, args, steps, out), "--overwrite"]
            code, seconds, tail = _cli(cmd, threads=args.threads, log=args.cache_dir / "log.txt")
            if code != 0:
                raise SystemExit(f"probe {key} failed:\n{tail}")
            times.append(seconds)
        per_step = (times[1] - times[0]) / args.probe_steps
        entry = {
            "steps": args.probe_steps,
            "batch_size": TRAIN_BATCH,
            "wall_seconds_0_and_n_steps": times,
            "seconds_per_step": round(per_step, 4),
            "ms_per_image": round(1000 * per_step / TRAIN_BATCH, 2),
            "loadavg": os.getloadavg(),
        }
        _update("probe", key, entry)
        print(key, entry, flush=True)


def baselines(args: argparse.Namespace) -> None:
    for key in args.models:
        folder = args.cache_dir / f"{key}-base"
        name = f"baseline/{key}"
        if name in _read_results()["runs"] and (folder / "model.json").is_file():
            continue
        steps = args.train_steps.get(key)
        if steps is None:
            per_step = _read_results()["probe"][key]["seconds_per_step"]
            steps = int(args.budget_minutes * 60 / per_step) // 10 * 10
        cmd = _train_cmd(key, args, steps, folder)
        log = args.cache_dir / "log.txt"
        if (folder / "metrics.json").is_file():  # trained, but this script stopped before
            code, seconds, tail = _recovered(cmd, log, folder / "metrics.json")
        else:
            code, seconds, tail = _cli(cmd, threads=args.threads, log=log)
        if code != 0:
            raise SystemExit(f"baseline {key} failed:\n{tail}")
        entry: dict[str, Any] = {"command": "filterprune " + " ".join(cmd), "wall_seconds": seconds}
        entry["steps"] = steps
        entry["training_images_seen"] = steps * TRAIN_BATCH
        entry["validation"] = json.loads((folder / "metrics.json").read_text())["metrics"]
        entry.update(_measure(folder, args.data))
        _update("runs", name, entry)
        print(name, entry, flush=True)


def _prune_run(args: argparse.Namespace, key: str, label: str, extra: list[str], target: int,
               seed: int) -> None:  # fmt: skip
    name = f"{label}/{key}/macs-{target}/seed{seed}"
    if name in _read_results()["runs"]:
        return
    base = args.cache_dir / f"{key}-base"
    run_dir = args.cache_dir / "runs" / name.replace("/", "_")
    cmd = ["prune", "--load", str(base), "--target", f"macs=-{target}%", *extra]
    cmd += ["--seed", str(seed), "--run-dir", str(run_dir), "--quiet"]
    shallower = [t for t in args.targets if t < target]
    source = run_dir.parent / run_dir.name.replace(f"macs-{target}", f"macs-{max(shallower)}") \
        if shallower else None  # fmt: skip
    continued = None
    if not run_dir.exists() and source is not None and (source / "state.json").is_file():
        shutil.copytree(source, run_dir)
        continued = source.name
    state = json.loads((run_dir / "state.json").read_text()) if (run_dir / "state.json").is_file() \
        else {}  # fmt: skip
    log = args.cache_dir / "log.txt"
    reductions = [t.get("reduction") for t in state.get("config", {}).get("targets", [])]
    if state.get("finished") and reductions == [target / 100] and continued is None:
        code, seconds, tail = _recovered(cmd, log, run_dir / "state.json")  # entry not written
    else:
        cmd += ["--resume"] if state else []
        code, seconds, tail = _cli(cmd, threads=args.threads, log=log)
    entry: dict[str, Any] = {
        "command": "filterprune " + " ".join(c for c in cmd if c != "--resume"),
        "continued_from": continued,
        "exit_code": code,
        "wall_seconds": seconds,
        "output_tail": tail,
    }
    if (run_dir / "state.json").is_file():
        saved = json.loads((run_dir / "state.json").read_text())
        entry["stop_reason"] = saved.get("stop_reason")
        rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
        entry["iterations"] = max(r["iteration"] for r in rows if isinstance(r["iteration"], int))
        entry["validation"] = [
            {"iteration": r["iteration"], "accuracy": r["metrics"].get("accuracy"),
             "macs": r["macs"], "accepted": r.get("accepted")}
            for r in rows
        ]  # fmt: skip
        entry.update(_measure(run_dir, args.data))
        base_macs = _read_results()["runs"][f"baseline/{key}"]["macs"]
        entry["macs_ratio"] = round(base_macs / entry["macs"], 3)
        if args.latency_rounds:
            entry["latency"] = _latency(
                base, run_dir, rounds=args.latency_rounds, threads=args.threads
            )
    _update("runs", name, entry)
    print(name, {k: entry.get(k) for k in ("test_accuracy", "macs_ratio", "wall_seconds")})


def _tp_prune(model: torch.nn.Module, example: torch.Tensor, kind: str, batches: list[Any],
              target_macs: int) -> torch.nn.Module:  # fmt: skip
    """Torch-Pruning global pruning of the convs, its ratio bisected to ``target_macs``."""
    import copy

    import torch_pruning as tp

    from filterprune.measure import count
    from filterprune.tasks import get_task

    grads = []
    if kind == "taylor":  # TP's Taylor importance reads .grad: accumulate over the batches
        model.zero_grad(set_to_none=True)
        for inputs, targets in batches:
            get_task("classify").loss(model(inputs), targets).backward()
        grads = [None if q.grad is None else q.grad.detach().clone() for q in model.parameters()]
        model.zero_grad(set_to_none=True)

    def trial(ratio: float) -> tuple[torch.nn.Module, int]:
        m = copy.deepcopy(model)
        for q, g in zip(m.parameters(), grads, strict=False):
            q.grad = g
        importance = (
            tp.importance.TaylorImportance()
            if kind == "taylor"
            else tp.importance.MagnitudeImportance(p=1)
        )
        pruner = tp.pruner.BasePruner(
            m, example, importance=importance, global_pruning=True, pruning_ratio=ratio,
            max_pruning_ratio=0.25,  # the default recipe's --max-layer-fraction
            ignored_layers=[x for x in m.modules() if isinstance(x, torch.nn.Linear)],
        )  # fmt: skip
        pruner.step()
        m.zero_grad(set_to_none=True)
        return m, count(m, example).macs

    lo, hi = 0.0, 0.5  # smallest global ratio whose MACs reach the target (12 halvings)
    best = trial(hi)
    for _ in range(12):
        mid = (lo + hi) / 2
        m, macs = trial(mid)
        if macs <= target_macs:
            hi, best = mid, (m, macs)
        else:
            lo = mid
    return best[0]


def tp_run(args: argparse.Namespace, key: str, kind: str, target: int, seed: int) -> None:
    """Torch-Pruning's importance on the default run's MACs schedule, filterprune's trainer.

    Iteration k prunes (TP, global, convs only, at most 25 % of a layer) down to the MACs the
    default run of the same model, target and seed had after its iteration k, then finetunes
    the same number of steps (100, batch 16) with the same optimizer; the same final finetune
    (one pass over the training data from the baseline's rate, cosine); the same test
    evaluation and side-by-side latency.
    """
    from filterprune.loop.state import seed_everything
    from filterprune.recipes import Optimizer, load_data

    name = f"tp_{kind}/{key}/macs-{target}/seed{seed}"
    results = _read_results()
    default = results["runs"].get(f"default/{key}/macs-{target}/seed{seed}")
    if name in results["runs"] or default is None or "validation" not in default:
        return
    print(f"$ torch-pruning {kind} {key} macs-{target} seed {seed}", flush=True)
    start = time.perf_counter()
    base = args.cache_dir / f"{key}-base"
    model, info = _load(base)
    data = load_data("classify", saved=info["data"], batch_size=16)
    # as 'prune' finetunes by default: the baseline's optimizer at a tenth of its rate after
    # each step; at the end one pass over the training data from the baseline's rate, cosine
    trained = Optimizer.from_dict(info["training"])
    training = trained.for_finetuning().kwargs()
    example = torch.zeros(info["input_shape"])
    rows = [r for r in default["validation"] if isinstance(r["iteration"], int)]
    schedule = [r["macs"] for r in rows if r["iteration"] > 0 and r.get("accepted", True)]
    for iteration, macs in enumerate(schedule, start=1):
        seed_everything(seed, f"tp-rank-{iteration}")
        batches = [b for b, _ in zip(data.train_loader, range(10), strict=False)]
        model = _tp_prune(model.train(), example, kind, batches, macs)
        seed_everything(seed, f"tp-finetune-{iteration}")
        data.task.finetune(model, data.train_loader, steps=100, **training)
    seed_everything(seed, "tp-final")
    final = {**training, "lr": trained.lr}
    data.task.finetune(
        model, data.train_loader, steps=len(data.train_loader), schedule="cosine", **final
    )
    entry: dict[str, Any] = {
        "command": f"benchmarks/bench_fashion.py --stage torch_pruning (TP {kind} importance)",
        "iterations": len(schedule),
        "stop_reason": "default run's MACs schedule",
        "macs_schedule": schedule,
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    entry.update(_measure_model(model, info, args.data))
    entry["macs_ratio"] = round(results["runs"][f"baseline/{key}"]["macs"] / entry["macs"], 3)
    if args.latency_rounds:
        entry["latency"] = _latency(base, model, rounds=args.latency_rounds, threads=args.threads)
    _update("runs", name, entry)
    print(name, {k: entry.get(k) for k in ("test_accuracy", "macs_ratio", "wall_seconds")})


def _stats(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(results: dict[str, Any]) -> str:
    """Markdown: every pruning run, then mean ± std per configuration with paired differences."""
    runs = results["runs"]
    lines = [
        "| run | test acc. % | drop (points) | MACs | fewer MACs | narrowest conv | "
        "speed-up b1 / b16 | efficiency b1 / b16 | stop | iterations | wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    groups: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for name, entry in sorted(runs.items()):
        if name.startswith("baseline/") or "test_accuracy" not in entry:
            continue
        label, key, target, seed = name.split("/")
        base = runs[f"baseline/{key}"]
        drop = base["test_accuracy"] - entry["test_accuracy"]
        lat = entry.get("latency") or {}
        speed = [lat.get(f"batch{b}", {}).get("speedup") for b in (1, 16)]
        eff = [round(s / entry["macs_ratio"], 2) if s else None for s in speed]
        narrow = entry.get("narrowest_layer") or ["-", "-"]
        groups[(key, target, label)][int(seed.removeprefix("seed"))] = {
            "acc": entry["test_accuracy"], "drop": drop, "ratio": entry["macs_ratio"],
            "s1": speed[0], "s16": speed[1], "e1": eff[0], "e16": eff[1],
            "narrow": f"{narrow[0]}: {narrow[1]}", "wall": entry["wall_seconds"],
        }  # fmt: skip
        lines.append(
            f"| {name} | {entry['test_accuracy']:.2f} | {drop:+.2f} | {entry['macs'] / 1e6:.1f} M "
            f"| {entry['macs_ratio']:.2f}x | {narrow[0]}: {narrow[1]} | "
            f"{speed[0] or '-'} / {speed[1] or '-'} | {eff[0] or '-'} / {eff[1] or '-'} | "
            f"{entry.get('stop_reason')} | {entry.get('iterations')} | "
            f"{entry['wall_seconds']:.0f} |"
        )
    lines += [
        "",
        "| model | target | run | seeds | test acc. % | drop (points) | fewer MACs | "
        "paired diff. vs default (points) | speed-up b1 | speed-up b16 | efficiency b1 / b16 | "
        "narrowest conv per seed | wall s per run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (key, target, label), by_seed in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2] != "default", kv[0][2])):  # fmt: skip
        default = groups.get((key, target, "default"), {})
        paired = [r["acc"] - default[s]["acc"] for s, r in by_seed.items() if s in default]
        col = {k: [r[k] for r in by_seed.values()] for k in next(iter(by_seed.values()))}
        diff = "-" if label == "default" else f"{_stats(paired)} (n={len(paired)})"
        lines.append(
            f"| {key} | {target} | {label} | {','.join(map(str, sorted(by_seed)))} | "
            f"{_stats(col['acc'])} | {_stats(col['drop'])} | {_stats(col['ratio'])}x | {diff} | "
            f"{_stats(col['s1'])} | {_stats(col['s16'])} | {_stats(col['e1'])} / "
            f"{_stats(col['e16'])} | {'; '.join(col['narrow'])} | {_stats(col['wall'])} |"
        )
    return "\n".join(lines)


def _stage(args: argparse.Namespace) -> None:
    if args.stage == "probe":
        probe(args)
    elif args.stage == "baselines":
        baselines(args)
    for seed in args.seeds if args.stage in ("default", "criteria", "torch_pruning") else ():
        for key in args.models:
            for target in args.targets:
                if args.stage == "torch_pruning":
                    for kind in ("taylor", "magnitude"):
                        tp_run(args, key, kind, target, seed)
                    continue
                if args.stage == "default":
                    _prune_run(args, key, "default", [], target, seed)
                    continue
                for crit in args.criteria:
                    flags = CRITERIA[crit] if crit in CRITERIA else VARIANTS[crit]
                    _prune_run(args, key, crit, flags, target, seed)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def _steps(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in text.split(","))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages = ("probe", "baselines", "default", "criteria", "torch_pruning", "table")
    parser.add_argument("--stage", choices=stages, required=True)
    parser.add_argument("--models", type=lambda s: s.split(","), default=list(MODELS))
    parser.add_argument("--targets", type=_ints, default=[75, 90])
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="pruning seeds")
    parser.add_argument("--criteria", type=lambda s: s.split(","), default=list(CRITERIA),
                        help=f"of {', '.join([*CRITERIA, *VARIANTS])}")  # fmt: skip
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--probe-steps", type=int, default=30)
    parser.add_argument("--budget-minutes", type=float, default=12.0,
                        help="baseline training time, turned into steps by the probe")  # fmt: skip
    parser.add_argument("--train-steps", type=_steps, default={}, help="e.g. vgg=900,resnet=500")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", type=Path, default=None, help="JSON file of the runs")
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "fashion")
    args = parser.parse_args()
    if args.results is not None:
        global RESULTS
        RESULTS = args.results
    if args.stage == "table":
        print(table(_read_results()))
        return
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    start, wall = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.perf_counter()
    _stage(args)
    stage = {
        "stage": args.stage, "argv": sys.argv[1:], "started": start,
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "loadavg_end": os.getloadavg(),
    }  # fmt: skip
    _update("stages", f"{start} {args.stage} {','.join(args.models)}", stage)


if __name__ == "__main__":
    main()
