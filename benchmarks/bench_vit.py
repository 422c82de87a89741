"""timm's vision transformers and CNN-attention hybrids through filterprune and Torch-Pruning.

The families are timm's model modules named below (its catalogue of transformer and hybrid
families); in each, the model with the fewest parameters (built on ``meta``, no weights) is taken.
For each, in a subprocess with a time limit, with random weights (``bench_timm._prepare``:
norms randomised so the oracle has signal):

1. filterprune, ``fp.prune(amount=0.3, criterion="l1", scope="per_group", layer_types=())``
   (each group loses 30 %, every layer kind), analysis and removal timed together; the
   norm-aware oracle (``restrict_norms=True``), relative to the output's largest value, exact
   below 1e-4; parameters and MACs kept; attention groups (heads) pruned and kept, and the
   first reason a group was kept;
2. Torch-Pruning 1.6.1 as its ViT example asks: ``MetaPruner(..., num_heads={qkv: heads},
   prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.3)`` (separate q/k/v
   Linears each with their count) with L1 magnitude, the classifier ignored, then
   ``num_heads``/``head_dim``/``attn_dim`` set from ``pruner.num_heads`` on the attention
   modules; through ``bench_timm._run_peer``, so its removals are checked by the same oracle.

Needs the zoo environment (timm, Torch-Pruning), which CI never uses::

    ../shared/tools/zoo-venv.sh /work/zoo && /work/zoo/bin/pip install torch-pruning==1.6.1
    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_vit.py --out benchmarks/results/vit.jsonl
    PYTHONPATH=src /work/zoo/bin/python benchmarks/bench_vit.py --table benchmarks/results/vit.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_timm import _commit, _prepare, _relative, _timm, outcome  # noqa: E402

AMOUNT = 0.3
FAMILIES = (
    "vision_transformer", "deit", "swin_transformer", "swin_transformer_v2", "beit", "eva",
    "pit", "cait", "xcit", "levit", "mobilevit", "efficientformer", "tiny_vit", "fastvit",
    "metaformer", "efficientvit_mit", "maxxvit", "twins", "convit", "crossvit",
    "swin_transformer_v2_cr", "vision_transformer_relpos", "vision_transformer_sam",
    "vision_transformer_hybrid", "efficientformer_v2", "efficientvit_msra", "nextvit", "pvt_v2",
    "gcvit", "davit", "coat", "mvitv2", "hiera", "hieradet_sam2", "nest", "tnt", "volo",
    "visformer", "vitamin", "shvit", "swiftformer", "byoanet", "naflexvit", "edgenext",
    "csatv2", "lowformer", "iformer", "focalnet", "qwen3_vit", "gemma4_vit", "mobilenetv5",
    "efficientvim", "deepseek_vit",
)  # fmt: skip
#: Named models beside the smallest of each family (a family's smallest may be a test model).
EXTRA = (
    "coatnet_nano_rw_224", "maxvit_nano_rw_256", "mobilevit_xxs", "levit_128s",
    "mobilenetv4_hybrid_medium",
)  # fmt: skip
#: The goal models of issue 30, always measured.
GOALS = ("vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")


def pick(family: str) -> str | None:
    timm = _timm()
    best = None
    for name in timm.list_models(module=family):
        try:
            with torch.device("meta"):
                n = sum(p.numel() for p in timm.create_model(name).parameters())
        except Exception:  # noqa: BLE001 - a model that does not build on meta is skipped
            continue
        if best is None or n < best[0]:
            best = (n, name)
    return best[1] if best else None


def run_filterprune(model, x) -> dict:
    import filterprune as fp

    before = fp.count(model, x)
    original = copy.deepcopy(model)
    start = time.perf_counter()
    graph = fp.analyze(model, x)
    heads = [g for g in graph.groups if g.heads]
    plan = fp.prune(
        model, x, amount=AMOUNT, criterion="l1", graph=graph, scope="per_group", layer_types=()
    )
    seconds = time.perf_counter() - start
    diff = _relative(original, model, plan, x)
    after = fp.count(model, x)
    # the classifier is kept as the output everywhere; heads kept with the stream it returns
    # (DINOv3 without a classifier) are named
    kept = [g for g in graph.frozen if g.heads or not any("model output" in r for r in g.reasons)]
    return {
        **outcome(before, after, diff, seconds),
        "head_groups": len(heads),
        "head_groups_kept": sum(g.frozen for g in heads),
        "kept_groups": len(kept),
        "first_kept_reason": kept[0].reasons[0][:300] if kept else "",
    }


def _head_layers(model) -> dict:
    """``{projection: head count}`` as Torch-Pruning's docs ask: each attention's fused ``qkv``
    Linear, or its separate q/k/v Linears (k and v with the key/value head count)."""
    found = {}
    for m in model.modules():
        heads = getattr(m, "num_heads", None)
        if not isinstance(heads, int):
            continue
        kv = getattr(m, "num_kv_heads", None) or heads
        if isinstance(getattr(m, "qkv", None), torch.nn.Linear):
            found[m.qkv] = heads
        for q, k, v in (("q", "k", "v"), ("q_proj", "k_proj", "v_proj")):
            layers = [getattr(m, n, None) for n in (q, k, v)]
            if all(isinstance(t, torch.nn.Linear) for t in layers):
                found.update({layers[0]: heads, layers[1]: kv, layers[2]: kv})
    return found


def _set_heads(model, pruner) -> None:
    """As Torch-Pruning's ViT example does after pruning: the modules' counts from its own."""
    for m in model.modules():
        layer = getattr(m, "qkv", None) or getattr(m, "q", None) or getattr(m, "q_proj", None)
        if not isinstance(layer, torch.nn.Module) or layer not in pruner.num_heads:
            continue
        m.num_heads = pruner.num_heads[layer]
        parts = 3 if layer is getattr(m, "qkv", None) else 1
        m.head_dim = layer.out_features // (parts * m.num_heads)
        if hasattr(m, "attn_dim"):
            m.attn_dim = m.num_heads * m.head_dim
        for k in ("k", "k_proj"):
            if hasattr(m, "num_kv_heads") and getattr(m, k, None) in pruner.num_heads:
                m.num_kv_heads = pruner.num_heads[getattr(m, k)]


def run_peer(model, x) -> dict:
    """Torch-Pruning with ``num_heads``, through ``bench_timm``'s runner: its removals recorded
    as a filterprune plan and checked by the same oracle as filterprune's."""
    import torch_pruning as tp
    from bench_timm import _run_peer

    heads = _head_layers(model)
    base = tp.pruner.MetaPruner

    class WithHeads(base):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(
                *args,
                num_heads=heads,
                prune_num_heads=True,
                prune_head_dims=False,
                head_pruning_ratio=AMOUNT,
                **kwargs,
            )

        def step(self, interactive: bool = False):
            yield from super().step(interactive=True)
            _set_heads(model, self)

    tp.pruner.MetaPruner = WithHeads
    try:
        row = _run_peer(model, x, AMOUNT)
    finally:
        tp.pruner.MetaPruner = base
    return {**row, "heads_given": len(heads)}


TOOLS = {"filterprune": run_filterprune, "peer": run_peer}


def global_ranking(name: str) -> dict:
    """How many heads a global ranking removes at 30 % (L1), raw, normalised, with the cost."""
    import filterprune as fp

    model, _, x, _ = _prepare(name)
    graph = fp.analyze(model, x)
    heads = {g.name for g in graph.prunable if g.heads}
    n_heads = sum(g.size for g in graph.prunable if g.heads)
    n_other = sum(g.size for g in graph.prunable) - n_heads
    out = {}
    for label, kw in (
        ("raw", {"normalize": False, "flops_reg": 0.0}),
        ("normalised", {"normalize": True, "flops_reg": 0.0}),
        ("normalised + cost 0.1", {"normalize": True, "flops_reg": 0.1}),
    ):
        pruned = copy.deepcopy(model)
        plan = fp.prune(
            pruned, x, amount=AMOUNT, criterion="l1", scope="global", layer_types=(),
            graph=copy.deepcopy(graph), **kw,
        )  # fmt: skip
        gone = sum(len(v) for n, v in plan.groups.items() if n in heads)
        out[label] = {
            "heads_removed": f"{gone}/{n_heads}",
            "channels_removed": f"{plan.num_removed - gone}/{n_other}",
            "params_kept": fp.count(pruned, x).params / fp.count(model, x).params,
        }
    return out


def export_check(name: str) -> dict:
    """Prune ``name`` as the table does (float32), then run it through ``torch.export`` and ONNX
    (the dynamo exporter, run by onnxruntime): each output's largest difference from the eager
    pruned model, relative to its largest value, and the packages of its module classes."""
    import tempfile

    import onnxruntime as ort

    import filterprune as fp

    model, _, x, _ = _prepare(name)
    model, x = model.float().eval(), x.float()
    start = time.perf_counter()
    fp.prune(model, x, amount=AMOUNT, criterion="l1", scope="per_group", layer_types=())
    row: dict = {"model": name, "prune_seconds": time.perf_counter() - start}
    with torch.no_grad():
        ref = model(x)
        scale = float(ref.abs().max())
        row["torch_export"] = float(
            (torch.export.export(model, (x,)).module()(x) - ref).abs().max()
        )
    row["torch_export"] /= scale
    path = os.path.join(tempfile.mkdtemp(), f"{name}.onnx")
    torch.onnx.export(model, (x,), path, dynamo=True)
    session = ort.InferenceSession(path)
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    row["onnx"] = float((torch.from_numpy(out) - ref).abs().max()) / scale
    row["module_packages"] = sorted({type(m).__module__.split(".")[0] for m in model.modules()})
    return row


def one(name: str, tool: str) -> dict:
    row: dict = {"model": name}
    model, shape, x, signal = _prepare(name)
    row["input"], row["signal"] = list(shape), signal
    try:
        row[tool] = TOOLS[tool](copy.deepcopy(model), x)
    except Exception as exc:  # noqa: BLE001 - a crash is a result
        row[tool] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return row


def _child(name: str, tool: str, timeout: int) -> dict:
    """One tool on one model in a subprocess, so that a hang or a crash costs that cell only."""
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name, "--tool", tool],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {tool: {"error": f"timeout after {timeout} s"}}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {tool: {"error": tail[:300]}}


def _cells(r: dict) -> str:
    """exact (diff) | params kept | MACs kept | s of one tool's result, or its crash."""
    if "params_kept" not in r:
        return f"crash: {r.get('error', '?')[:70].replace('|', '/')} | | |"
    exact = "not checked"
    if "equivalent" in r:
        exact = f"{'yes' if r['equivalent'] else 'NO'} ({r['relative_difference']:.0e})"
    return f"{exact} | {r['params_kept']:.1%} | {r['macs_kept']:.1%} | {r['seconds']:.1f}"


def table(path: str) -> str:
    lines = [
        "| model | exact (diff) | params kept | MACs kept | s | head groups (kept) | "
        "first reason kept whole | TP+num_heads exact | params kept | MACs kept | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows, worse = 0, []
    with open(path) as f:
        for raw in f:
            r = json.loads(raw)
            a, p = r.get("filterprune", {"error": r.get("error", "?")}), r.get("peer", {})
            rows += 1
            heads = why = ""
            if "params_kept" in a:
                heads = f"{a['head_groups']} ({a['head_groups_kept']})"
                why = a["first_kept_reason"].replace("|", "/")
                why = why.replace("/work/zoo/lib/python3.11/site-packages/", "")[:110]
                if p.get("equivalent") and a["params_kept"] > p["params_kept"] + 1e-3:
                    worse.append(r["model"])
            lines.append(f"| {r['model']} | {_cells(a)} | {heads} | {why} | {_cells(p)} |")
    lines.append("")
    lines.append(
        f"{rows} models; filterprune keeps more parameters than an exact Torch-Pruning on "
        f"{len(worse)}{': ' + ', '.join(worse) if worse else ''}."
    )
    return "\n".join(lines)


def _revision() -> str:
    """The commit the rows ran on: ``BENCH_COMMIT`` (a run from an exported tree), else git's."""
    return os.environ.get("BENCH_COMMIT") or _commit()


def rerun(path: str, tool: str, timeout: int, models: list[str] | None) -> None:
    """``tool`` again on the models of ``path`` (all, or ``models``), the other tool's cell kept;
    the file is rewritten after each model, each row with the commit it ran on."""
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    for i, row in enumerate(rows):
        if models and row["model"] not in models:
            continue
        start = time.perf_counter()
        rows[i] = {**row, **_child(row["model"], tool, timeout), "commit": _revision()}
        rows[i]["wall_seconds"] = time.perf_counter() - start
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(row["model"], json.dumps(rows[i].get(tool))[:200], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/vit.jsonl")
    ap.add_argument("--one", help="run one model here and print its row (used by the parent)")
    ap.add_argument("--tool", choices=list(TOOLS), default="filterprune")
    ap.add_argument("--table", help="print the Markdown table of a results file")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--global-ranking", metavar="MODEL", help="heads removed by a global ranking")
    ap.add_argument("--models", nargs="*", help="these models instead of one per family")
    ap.add_argument("--rerun", choices=list(TOOLS), help="this tool again on --out's models")
    ap.add_argument("--export", nargs="+", metavar="MODEL", help="pruned, exported, compared")
    args = ap.parse_args()
    if args.export:
        torch.set_num_threads(1)
        for name in args.export:
            print(json.dumps(export_check(name)), flush=True)
        return
    if args.rerun:
        rerun(args.out, args.rerun, args.timeout, args.models)
        return
    if args.table:
        print(table(args.table))
        return
    if args.global_ranking:
        print(json.dumps(global_ranking(args.global_ranking)))
        return
    if args.one:
        torch.set_num_threads(1)
        print(json.dumps(one(args.one, args.tool)))
        return
    names = args.models or list(dict.fromkeys([*GOALS, *filter(None, map(pick, FAMILIES)), *EXTRA]))
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {json.loads(line)["model"] for line in f}
    for name in names:
        if name in done:
            continue
        start = time.perf_counter()
        row = {"model": name, "commit": _revision()}
        for tool in TOOLS:
            row = {**_child(name, tool, args.timeout), **row}
        row["wall_seconds"] = time.perf_counter() - start
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(name, json.dumps(row)[:300], flush=True)


if __name__ == "__main__":
    main()
