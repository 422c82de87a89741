"""One model of every timm CNN or CNN-attention family through filterprune and Torch-Pruning.

The families come from the catalogue, not from a hand list: every module of ``timm.models``
that registers models is a family. For each family the smallest-looking names (``atto``,
``tiny``, ``18``, ...) are built on the ``meta`` device (no memory, no weights), and the one with
the fewest parameters among those with at least three 2-D convolutions is taken; a family none of
whose candidates has three convs (a plain ViT, an MLP-Mixer) is recorded as not a CNN.

For each model (random weights, nothing downloaded), in a subprocess with a time limit:

1. build it, calibrate its BatchNorm statistics on two random batches and randomise every norm's
   affine parameters and layer scales (``filterprune.testing``), so the oracle has signal;
2. filterprune: ``fp.analyze`` + ``fp.prune(amount=0.3, criterion="l1")``, timed together;
   the pruned model is compared with the original whose removed channels are zeroed (where
   they are made, ``mask_outputs``: a norm over a channel mean, GRN or an RMS norm, sees them as
   zeros) and whose LayerNorm/GroupNorm statistics cover the kept channels only, relative to the output's largest
   magnitude (``equivalent`` below 1e-4); parameters and MACs kept (``fp.count``); the groups kept
   whole and the first reason;
3. Torch-Pruning 1.6 in its default use (``MetaPruner``, ``MagnitudeImportance(p=1)``,
   ``pruning_ratio=0.3``, the classifier ignored): its groups are recorded as it prunes them
   (``step(interactive=True)``), mapped back to the original numbering, and the same oracle is
   applied to the same plan form; a crash is a result;
4. where the peer is exact but keeps more than 0.01 fewer parameters because it removed more
   than asked from some layer (its deepest layer above the amount), filterprune again at the
   least amount (bisected up to that deepest layer's share) at which it keeps no more than the
   peer: the two compared at the same size, with the deepest layer each needed.

Inputs are 64x64 unless the model fixes its size (then its default). It needs timm and
Torch-Pruning, which the project does not depend on (CI never runs this)::

    ../shared/tools/zoo-venv.sh /work/zoo && /work/zoo/bin/pip install torch-pruning==1.6.1
    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_timm.py --families   # the list
    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_timm.py --resume \\
        --out benchmarks/results/timm.jsonl --shard 0/4      # ... up to 3/4, in chunks
    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_timm.py --table \\
        benchmarks/results/timm.jsonl     # the Markdown table of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import time
import traceback

import torch

TOLERANCE = 1e-4
SMALL_WORDS = (
    "atto", "femto", "pico", "nano", "tiny", "xxs", "xs", "mini", "small", "lite", "light",
    "s", "b0", "a0", "t", "0", "18", "26", "050", "100",
)  # fmt: skip
CANDIDATES = 5
#: ultralytics' task heads, one or more per generation (yaml configs shipped with the package;
#: the scale letter in the name picks the width): detect, segment, pose, OBB, classify, and the
#: newest generations' semantic segmentation and depth, plus RT-DETR.
ULTRALYTICS = (
    "yolov3-tiny.yaml", "yolov5n.yaml", "yolov6n.yaml", "yolov8n.yaml", "yolov8n-ghost.yaml",
    "yolov8n-p2.yaml", "yolov8n-seg.yaml", "yolov8n-pose.yaml", "yolov8n-obb.yaml",
    "yolov8n-cls.yaml", "yolov8n-world.yaml", "yolov9t.yaml", "yolov10n.yaml", "yolo11n.yaml",
    "yolo11n-seg.yaml", "yolo11n-pose.yaml", "yolo11n-obb.yaml", "yolo11n-cls.yaml",
    "yolo12n.yaml", "yolo12n-seg.yaml", "yolo12n-pose.yaml", "yolo12n-obb.yaml",
    "yolo12n-cls.yaml", "yolo26n.yaml", "yolo26n-seg.yaml", "yolo26n-pose.yaml",
    "yolo26n-obb.yaml", "yolo26n-cls.yaml", "yolo26n-sem.yaml", "yolo26n-depth.yaml",
    "yoloe-11n.yaml", "rtdetr-l.yaml", "rtdetr-resnet50.yaml",
)  # fmt: skip
ULTRALYTICS_PREFIX = "ultralytics:"


#: Each layer loses the same share, all layer kinds, no cost term: as the peer prunes by default
#: (filterprune's own default is one global ranking of the convolutions with a cost term).
PEER_SETTINGS = {"scope": "per_group", "layer_types": ()}


def _timm():
    import torchvision_shim  # noqa: F401, I001  (before timm, which imports torchvision)
    import timm

    return timm


class TensorOutputs(torch.nn.Module):
    """An ultralytics model's outputs as a tuple of tensors, as it returns them in eval mode.

    Eval mode returns ``(predictions, extras)``, the extras being the raw per-level head outputs
    (and features) the loss reads; all are kept, with ``None`` leaves (RT-DETR) dropped. (With the
    predictions alone, the probe cannot verify the DFL's ``view(b, 4, self.c1, a)`` and keeps
    every group: a gap noted in docs/benchmarks.md.)
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = torch.utils._pytree.tree_flatten(self.model(x))[0]
        return tuple(t for t in leaves if isinstance(t, torch.Tensor))


def _ultralytics(cfg: str) -> torch.nn.Module:
    import torchvision_shim  # noqa: F401, I001
    from ultralytics.nn import tasks

    task = "detect" if cfg.startswith("rtdetr") else tasks.guess_model_task(cfg)
    build = {
        "detect": tasks.DetectionModel,
        "segment": tasks.SegmentationModel,
        "pose": tasks.PoseModel,
        "obb": tasks.OBBModel,
        "classify": tasks.ClassificationModel,
    }.get(task, tasks.DetectionModel)
    if cfg.startswith("rtdetr"):
        build = tasks.RTDETRDetectionModel
    elif "world" in cfg:
        build = tasks.WorldModel
    elif cfg.startswith("yoloe"):
        build = tasks.YOLOEModel
    for name in ("SemanticModel", "DepthModel"):  # newer tasks, where the package has them
        if task in ("semantic", "depth") and hasattr(tasks, name) and name.lower()[:5] in task:
            build = getattr(tasks, name)
    return TensorOutputs(build(cfg, verbose=False))


def _build(name: str) -> torch.nn.Module:
    if name.startswith(ULTRALYTICS_PREFIX):
        return _ultralytics(name[len(ULTRALYTICS_PREFIX) :])
    return _timm().create_model(name, pretrained=False)


def _commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--", "../src"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return ""
    return head + ("+dirty" if dirty else "")


def _size_key(name: str) -> tuple[int, int, str]:
    words = re.split(r"[_.]", name)
    rank = min((SMALL_WORDS.index(w) for w in words if w in SMALL_WORDS), default=len(SMALL_WORDS))
    return (rank, len(name), name)


def _conv_and_params(name: str) -> tuple[int, int]:
    timm = _timm()
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    convs = sum(
        1 for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.dim() == 4
    )
    return convs, sum(p.numel() for p in model.parameters())


def families() -> list[dict]:
    """Every timm family with its representative (or why it has none)."""
    timm = _timm()
    found = []
    for module in sorted(timm.list_modules()):
        names = timm.list_models(module=module)
        if not names:
            continue
        best = None
        for name in sorted(names, key=_size_key)[:CANDIDATES]:
            try:
                convs, params = _conv_and_params(name)
            except Exception:  # noqa: BLE001 - a model that cannot be built on meta is skipped
                continue
            if convs >= 3 and (best is None or params < best[1]):
                best = (name, params)
        found.append({"family": module, "models": len(names), "model": best[0] if best else None})
    return found


def _input_shape(model, name: str) -> tuple[int, ...]:
    shape = (1, 3, 64, 64)
    try:
        with torch.no_grad():
            model.eval()(torch.randn(shape))
        return shape
    except Exception:  # noqa: BLE001 - the model fixes its input size
        cfg = None if name.startswith(ULTRALYTICS_PREFIX) else _timm().get_pretrained_cfg(name)
        size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
        return (1, *size)


def _prepare(name: str):
    from filterprune.testing import calibrate_batchnorm, output_change, randomize_norms

    torch.manual_seed(0)
    model = _build(name)
    shape = _input_shape(model, name)
    batches = [torch.randn(2, *shape[1:]) for _ in range(2)]
    with torch.no_grad():  # zero-initialised heads would make every output equal
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() > 1 and not weight.any():
                torch.nn.init.normal_(weight, std=0.02)
        for key, p in model.named_parameters():  # a zero gain (timm's GRN) hides what it scales
            if p.dim() == 1 and not key.endswith("bias") and not p.any():
                torch.nn.init.uniform_(p, 0.5, 1.5)
    randomize_norms(model, statistics=False)  # gains first: the statistics then follow them
    calibrate_batchnorm(model, batches)
    model.eval()
    x, other = torch.randn(shape), torch.randn(shape)
    _tame(model, x)
    return model, shape, x, output_change(model, x, other)


def _largest_output(model, x) -> float:
    with torch.no_grad():
        leaves = torch.utils._pytree.tree_flatten(model(x))[0]
    return max((float(t.abs().max()) for t in leaves if t.numel()), default=0.0)


def _tame(model, x, limit: float = 1e6) -> None:
    """Halve every norm's affine parameters until the output is finite and below ``limit``.

    Random gains in [0.5, 1.5] on every residual branch (timm zero-initialises the last one)
    can overflow a deep model without a final norm (HaloNet's outputs reach inf at 256 px); the
    oracle needs finite outputs. Most models are left as they are.
    """
    for _ in range(12):
        largest = _largest_output(model, x)
        if largest == largest and largest < limit:  # finite and not NaN
            return
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm,
                                  torch.nn.LayerNorm)):  # fmt: skip
                    for p in (m.weight, m.bias):
                        if p is not None:
                            p.mul_(0.5)


def _relative(original, pruned, plan, x) -> float:
    """The oracle's difference relative to the output's scale, in float64 where the model runs
    in it: a random-weight attention model can turn float32 rounding into visible changes
    (HaloNet's output moves by half its scale for a 1e-6 change of its input)."""
    try:
        wide = (copy.deepcopy(original).double(), copy.deepcopy(pruned).double(), x.double())
        with torch.no_grad():
            wide[1](wide[2])
    except Exception:  # noqa: BLE001 - a model with float32 constants stays in float32
        wide = (original, pruned, x)
    return _relative_in(*wide[:2], plan, wide[2])


def _relative_in(original, pruned, plan, x) -> float:
    from filterprune.testing import max_difference

    with torch.no_grad():
        out = torch.utils._pytree.tree_flatten(original(x))[0]
    scale = max(float(t.abs().max()) for t in out if t.numel())
    diff = max_difference(original, pruned, plan, x, restrict_norms=True, mask_outputs=True)
    return diff / max(scale, 1e-12)


def outcome(before, after, diff: float, seconds: float) -> dict:
    """The fields every tool's row has: exact or not, what it kept, how long it took."""
    return {
        "equivalent": diff < TOLERANCE,
        "relative_difference": diff,
        "params_kept": after.params / before.params,
        "macs_kept": after.macs / before.macs,
        "seconds": seconds,
    }


def _widths(model) -> dict[str, int]:
    """Output channels of every conv and linear layer, by name."""
    from filterprune.graph.specs import spec_for

    out = {}
    for name, module in model.named_modules():
        spec = spec_for(module)
        if spec is not None and spec.kind == "mixing":
            out[name] = int(spec.channels(module)[1])
    return out


def _deepest(widths: dict[str, int], model) -> float:
    """The largest share of one layer's output channels removed: above the amount asked, the
    tool removed more than asked from some layer."""
    after = _widths(model)
    return max((1 - after[n] / w for n, w in widths.items() if n in after and w), default=0.0)


def _run_filterprune(model, x, amount: float) -> dict:
    import filterprune as fp

    before = fp.count(model, x)
    widths = _widths(model)
    original = copy.deepcopy(model)
    start = time.perf_counter()
    graph = fp.analyze(model, x)
    plan = fp.prune(model, x, amount=amount, criterion="l1", graph=graph, **PEER_SETTINGS)
    seconds = time.perf_counter() - start
    diff = _relative(original, model, plan, x)
    after = fp.count(model, x)
    kept = [g for g in graph.frozen if not any("model output" in r for r in g.reasons)]
    return {
        **outcome(before, after, diff, seconds),
        "groups": len(graph.groups),
        "prunable_groups": len(graph.prunable),
        "kept_groups": len(kept),
        "first_kept_reason": kept[0].reasons[0] if kept else "",
        "deepest_layer": _deepest(widths, model),
        "params": before.params,
        "macs": before.macs,
    }


def _run_peer(model, x, amount: float) -> dict:
    """Torch-Pruning, its removals recorded as a filterprune plan for the same oracle."""
    import torch_pruning as tp

    import filterprune as fp
    from filterprune.graph.specs import spec_for
    from filterprune.plan import Plan

    before = fp.count(model, x)
    widths = _widths(model)
    original = copy.deepcopy(model)
    names = {m: n for n, m in model.named_modules()}
    if isinstance(model, TensorOutputs):  # the task head, as the peer's YOLOv8 example does
        head = model.model.model[-1]
    else:
        head = model.get_classifier() if hasattr(model, "get_classifier") else None
    has_weights = isinstance(head, torch.nn.Module) and next(head.parameters(), None) is not None
    ignored = [head] if has_weights else []
    alive: dict[tuple[str, str], list[int]] = {}
    removed: dict[tuple[str, str], list[int]] = {}
    channels: dict[str, list[int]] = {}

    def note(module, axis: str, idxs) -> None:
        name = names.get(module)
        spec = spec_for(module) if name is not None else None
        if spec is None:
            return
        if name not in channels:
            channels[name] = list(spec.channels(module))
        total = channels[name][0 if axis == "in" else 1]
        left = alive.setdefault((name, axis), list(range(total)))
        gone = sorted({left[i] for i in idxs})
        removed.setdefault((name, axis), []).extend(gone)
        alive[(name, axis)] = [c for c in left if c not in set(gone)]

    start = time.perf_counter()
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=amount,
        ignored_layers=ignored,
    )
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            fn = dep.handler
            if pruner.DG.is_out_channel_pruning_fn(fn):
                note(dep.target.module, "out", idxs)
            elif pruner.DG.is_in_channel_pruning_fn(fn):
                note(dep.target.module, "in", idxs)
        group.prune()
    seconds = time.perf_counter() - start
    modules = dict(original.named_modules())
    outs = {n: sorted(set(v)) for (n, a), v in removed.items() if a == "out"}
    ins = {n: sorted(set(v)) for (n, a), v in removed.items() if a == "in"}
    for n, gone in outs.items():  # a depthwise conv losing filters loses those inputs too
        m = modules[n]
        if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1:
            ins.setdefault(n, gone)
    plan = Plan(
        removed_outputs=outs,
        removed_inputs={
            n: v for n, v in ins.items() if spec_for(modules[n]).kind == "mixing" and v
        },
        channels={n: channels[n] for n in {*outs, *ins}},
        groups={},
    )
    with torch.no_grad():
        model(x)  # it runs
    diff = _relative(original, model, plan, x)
    after = fp.count(model, x)
    return {**outcome(before, after, diff, seconds), "deepest_layer": _deepest(widths, model)}


TOOLS = {"filterprune": _run_filterprune, "peer": _run_peer}


def run_one(name: str, amount: float, tools: tuple[str, ...] = tuple(TOOLS)) -> dict:
    model, shape, x, signal = _prepare(name)
    row: dict = {"model": name, "input": list(shape), "signal": signal, "commit": _commit()}
    for key in tools:
        fn = TOOLS[key]
        try:
            row[key] = fn(copy.deepcopy(model), x, amount)
        except Exception as exc:  # noqa: BLE001 - a crash is a result to record
            traceback.print_exc()
            row[key] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    return row


def _in_child(name: str, amount: float, tool: str, threads: int, timeout: float) -> dict:
    """``run_one(name, amount, (tool,))`` in its own process and time limit: a tool that hangs
    costs only its own cell (``{tool: {"error": ...}}``)."""
    cmd = [sys.executable, __file__, "--one", name, "--amount", str(amount)]
    cmd += ["--threads", str(threads), "--tool", tool]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {tool: {"error": f"timeout after {timeout:.0f} s (build, both counts, oracle)"}}
    result = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), "")
    if result:
        return json.loads(result)
    tail = " ".join(done.stderr.split())[-300:]
    return {tool: {"error": f"exit {done.returncode}: {tail}"}}


def _child(
    name: str, amount: float, threads: int, timeout: float, kept: dict | None = None
) -> dict:
    """Each tool in its own process and time limit (a tool with a cell in ``kept`` is not run
    again: its cell is kept); then :func:`_match_peer`."""
    row: dict = {"model": name, **(kept or {})}
    for tool in TOOLS:
        if tool not in row:
            row = {**row, **_in_child(name, amount, tool, threads, timeout)}
    matched = _match_peer(row, amount, threads, timeout)
    return {**row, "filterprune_at_peer_size": matched} if matched else row


def _match_peer(row: dict, amount: float, threads: int, timeout: float, steps: int = 4) -> dict:
    """Where the peer is exact and keeps more than 0.01 fewer parameters by removing more than
    asked from some layer (its deepest layer above ``amount``): the least amount, between
    ``amount`` and that deepest layer's share (bisected ``steps`` times), at which filterprune
    keeps no more parameters than the peer (+0.01), with its row; ``{}`` where not needed."""
    fpr, peer = row.get("filterprune", {}), row.get("peer", {})
    depth = round(peer.get("deepest_layer", 0.0), 4)
    if not (
        peer.get("equivalent")
        and fpr.get("equivalent")
        and fpr["params_kept"] > peer["params_kept"] + 0.01
        and depth > amount + 0.02
    ):
        return {}
    lo, hi, best = amount, depth, {}
    for i in range(steps + 1):
        at = hi if i == 0 else round((lo + hi) / 2, 4)
        got = _in_child(row["model"], at, "filterprune", threads, timeout)["filterprune"]
        if got.get("params_kept", 1.0) <= peer["params_kept"] + 0.01:
            hi, best = at, {"amount": at, **got}
        else:
            lo = at
        if i == 0 and not best:
            return {"amount": at, **got}  # not even at the peer's deepest layer
    return best


def _fmt(r: dict) -> list[str]:
    if "error" in r:
        return [f"**error**: {r['error'][:60]}", "", "", ""]
    return [
        f"{'yes' if r['equivalent'] else '**no**'} ({r['relative_difference']:.0e})",
        f"{r['params_kept']:.2f}",
        f"{r['macs_kept']:.2f}",
        f"{r['seconds']:.1f}",
    ]


def _table(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        latest = {}  # a model run again (after a change) shows its last row, in its first place
        for line in f:
            if line.strip():
                r = json.loads(line)
                latest[(r.get("family"), r["model"])] = r
    rows = list(latest.values())
    lines = [
        "| family | model | input | fp exact | fp params | fp MACs | fp s | peer exact | "
        "peer params | peer MACs | peer s | deepest layer fp / peer | kept whole (fp) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    counts = {"models": 0, "fp": 0, "peer": 0, "deeper": 0, "peer_exact": 0}
    shallower: list[str] = []
    for r in rows:
        if r.get("model") is None:
            continue
        if "error" in r:
            lines.append(f"| {r.get('family', '')} | {r['model']} | | **error**: "
                         f"{r['error'][:80]} | | | | | | | | | |")  # fmt: skip
            continue
        fpr, peer = r["filterprune"], r["peer"]
        counts["models"] += 1
        counts["fp"] += bool(fpr.get("equivalent"))
        counts["peer"] += bool(peer.get("equivalent"))
        if peer.get("equivalent"):
            counts["peer_exact"] += 1
            if "params_kept" in fpr and fpr["params_kept"] <= peer["params_kept"] + 0.01:
                counts["deeper"] += 1
            elif "params_kept" in fpr:
                same = r.get("filterprune_at_peer_size", {})
                at = (
                    f"; filterprune at amount {same['amount']:.2f}: {same['params_kept']:.2f}, "
                    f"deepest layer {same.get('deepest_layer', 0):.2f}"
                    + ("" if same.get("equivalent") else " (**not exact**)")
                    if "params_kept" in same
                    else ""
                )
                shallower.append(
                    f"{r['model']} ({fpr['params_kept']:.2f} vs {peer['params_kept']:.2f}; "
                    f"deepest layer {fpr.get('deepest_layer', 0):.2f} vs "
                    f"{peer.get('deepest_layer', 0):.2f}{at})"
                )
        why = ""
        if fpr.get("kept_groups"):
            why = f"{fpr['kept_groups']}: {fpr['first_kept_reason'][:90]}".replace("|", "/")
        size = "x".join(map(str, r.get("input", [])[2:]))
        deep = " / ".join(
            f"{t['deepest_layer']:.2f}" if "deepest_layer" in t else "" for t in (fpr, peer)
        )
        lines.append(
            f"| {r.get('family', '')} | {r['model']} | {size} | "
            + " | ".join(_fmt(fpr)[:4])
            + " | "
            + " | ".join(_fmt(peer)[:4])
            + f" | {deep} | {why} |"
        )
    lines += [
        "",
        f"{counts['models']} models: filterprune exact on {counts['fp']}, the peer on "
        f"{counts['peer']}; where the peer is exact ({counts['peer_exact']}), filterprune keeps "
        f"no more parameters than the peer (+0.01) on {counts['deeper']}"
        + (f"; more on {', '.join(shallower)}." if shallower else "."),
    ]
    return "\n".join(lines)


def _redo(path: str, only: list[str] | None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    latest = {r["model"]: r for r in rows if r.get("model")}

    def failed(r: dict) -> bool:  # the whole row or filterprune crashed, timed out or differs
        fpr = r.get("filterprune", {})
        return "error" in r or "error" in fpr or not fpr.get("equivalent", True)

    return [
        {"family": r.get("family", ""), "model": m}
        for m, r in latest.items()
        if (m in only if only else failed(r))
    ]


def _rerun(path: str, tool: str, only: list[str] | None) -> list[dict]:
    """The latest row of every model of ``path`` (or of ``only``), with ``tool``'s cell dropped
    (run again) and the other tool's cell kept."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    latest = {r["model"]: r for r in rows if r.get("model") and "error" not in r}
    other = [t for t in TOOLS if t != tool]
    return [
        {
            "family": r.get("family", ""),
            "model": m,
            "kept": {t: {**r[t], "commit": r[t].get("commit", r.get("commit"))} for t in other},
        }
        for m, r in latest.items()
        if (m in only if only else True) and all(t in r for t in other)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/timm.jsonl")
    parser.add_argument("--only", nargs="*", help="model names (default: one per family)")
    parser.add_argument("--amount", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per model")
    parser.add_argument("--resume", action="store_true", help="skip models already in --out")
    parser.add_argument("--shard", default="0/1", metavar="I/N", help="every N-th from the I-th")
    parser.add_argument("--families", action="store_true", help="print the families and exit")
    parser.add_argument(
        "--ultralytics", action="store_true", help="ultralytics' task heads (or --only CONFIGS)"
    )
    parser.add_argument("--table", metavar="JSONL", help="print the Markdown table of a run")
    parser.add_argument(
        "--redo",
        action="store_true",
        help="run again the models of --out where filterprune crashed, timed out or differs "
        "(or --only "
        "MODELS of it), under their family; the table shows the last row of each model",
    )
    parser.add_argument(
        "--rerun",
        choices=tuple(TOOLS),
        help="this tool again on every model of --out (or --only MODELS of it), the other "
        "tool's cell kept with the commit it ran on; the new row is appended",
    )
    parser.add_argument(
        "--tools",
        nargs="+",
        choices=tuple(TOOLS),
        default=list(TOOLS),
        help="run only these tools (the others' cells say 'not run'): a quick sample",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one model
    parser.add_argument("--tool", choices=tuple(TOOLS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.table:
        print(_table(args.table))
        return
    if args.one:
        tools = (args.tool,) if args.tool else tuple(TOOLS)
        print(json.dumps(run_one(args.one, args.amount, tools)), flush=True)
        return
    if args.ultralytics:
        todo = [
            {"family": "ultralytics", "model": ULTRALYTICS_PREFIX + c}
            for c in (args.only or ULTRALYTICS)
        ]
    elif args.rerun:
        todo = _rerun(args.out, args.rerun, args.only)
    elif args.redo:
        todo = _redo(args.out, args.only)
    elif args.only:
        todo = [{"family": "", "model": m} for m in args.only]
    else:
        todo = families()
        if args.families:
            for f in todo:
                print(f"{f['family']:24} {f['models']:4}  {f['model'] or '(not a CNN)'}")
            return
    done = set()
    if args.resume and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        done = {r["family"] if r.get("family") not in ("", "ultralytics", None) else r["model"]
                for r in rows}  # fmt: skip
    index, count = (int(v) for v in args.shard.split("/"))
    todo = todo[index::count]
    for i, fam in enumerate(todo):
        key = fam["model"] if fam["family"] in ("", "ultralytics") else fam["family"]
        if key in done:
            continue
        start = time.perf_counter()
        if fam["model"] is None:
            row = {"model": None, "note": "no model with three 2-D convs among the smallest"}
        else:
            skipped = {t: {"error": "not run (--tools)"} for t in TOOLS if t not in args.tools}
            kept = {**skipped, **fam.get("kept", {})}
            row = _child(fam["model"], args.amount, args.threads, args.timeout, kept)
        row = {"family": fam["family"], **row}
        print(
            f"[{i + 1}/{len(todo)}] {key}: {fam['model']} {time.perf_counter() - start:.0f} s "
            + json.dumps({k: row[k] for k in row if k not in ("family", "model")})[:300],
            flush=True,
            file=sys.stderr,
        )
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
