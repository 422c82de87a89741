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
   prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.3)`` with L1 magnitude,
   the classifier ignored, then ``num_heads``/``head_dim``/``attn_dim`` set from
   ``pruner.num_heads`` on timm's ``Attention`` modules. Recorded: whether it ran, whether the
   pruned model runs, parameters and MACs kept (its exactness is not checked here).

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
from bench_timm import _prepare, _relative, _timm, outcome  # noqa: E402

AMOUNT = 0.3
FAMILIES = (
    "vision_transformer", "deit", "swin_transformer", "swin_transformer_v2", "beit", "eva",
    "pit", "cait", "xcit", "levit", "mobilevit", "efficientformer", "tiny_vit", "fastvit",
    "metaformer", "efficientvit_mit", "maxxvit", "twins", "convit", "crossvit",
    "swin_transformer_v2_cr", "vision_transformer_relpos", "vision_transformer_sam",
    "vision_transformer_hybrid", "efficientformer_v2", "efficientvit_msra", "nextvit", "pvt_v2",
    "gcvit", "davit", "coat", "mvitv2", "hiera", "hieradet_sam2", "nest", "tnt", "volo",
    "visformer", "vitamin", "shvit", "swiftformer", "byoanet", "naflexvit", "edgenext",
)  # fmt: skip
#: Named models beside the smallest of each family (a family's smallest may be a test model).
EXTRA = ("coatnet_nano_rw_224", "maxvit_nano_rw_256", "mobilevit_xxs", "levit_128s")
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
    kept = [g for g in graph.frozen if not any("model output" in r for r in g.reasons)]
    return {
        **outcome(before, after, diff, seconds),
        "head_groups": len(heads),
        "head_groups_kept": sum(g.frozen for g in heads),
        "kept_groups": len(kept),
        "first_kept_reason": kept[0].reasons[0][:300] if kept else "",
    }


def run_peer(model, x) -> dict:
    import torch_pruning as tp

    import filterprune as fp

    before = fp.count(model, x)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    has_weights = isinstance(head, torch.nn.Module) and next(head.parameters(), None) is not None
    ignored = [head] if has_weights else []
    num_heads = {
        m.qkv: m.num_heads
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), torch.nn.Linear) and hasattr(m, "num_heads")
    }
    start = time.perf_counter()
    pruner = tp.pruner.MetaPruner(
        model,
        x,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=AMOUNT,
        ignored_layers=ignored,
        num_heads=num_heads,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=AMOUNT,
    )
    pruner.step()
    for m in model.modules():  # as Torch-Pruning's ViT example does after pruning
        if getattr(m, "qkv", None) in pruner.num_heads:
            m.num_heads = pruner.num_heads[m.qkv]
            m.head_dim = m.qkv.out_features // (3 * m.num_heads)
            if hasattr(m, "attn_dim"):
                m.attn_dim = m.num_heads * m.head_dim
    seconds = time.perf_counter() - start
    try:
        after = fp.count(model, x)
        runs = True
    except Exception:  # noqa: BLE001 - a pruned model that no longer runs is a result
        after, runs = before, False
    return {
        "runs": runs,
        "params_kept": after.params / before.params,
        "macs_kept": after.macs / before.macs,
        "seconds": seconds,
        "heads_given": len(num_heads),
    }


def one(name: str) -> dict:
    row: dict = {"model": name}
    model, shape, x, signal = _prepare(name)
    row["input"], row["signal"] = list(shape), signal
    for key, fn in (("filterprune", run_filterprune), ("peer", run_peer)):
        try:
            row[key] = fn(copy.deepcopy(model), x)
        except Exception as exc:  # noqa: BLE001 - a crash is a result
            row[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return row


def table(path: str) -> str:
    lines = [
        "| model | exact (diff) | params kept | MACs kept | s | heads: groups (kept) | "
        "first reason kept whole | TP+num_heads: params kept | MACs kept |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    with open(path) as f:
        for raw in f:
            r = json.loads(raw)
            a, p = r.get("filterprune", {}), r.get("peer", {})
            if "error" in a or "params_kept" not in a:
                mine = f"crash: {a.get('error', r.get('error', '?'))[:80]} | | | | | "
            else:
                why = a["first_kept_reason"].replace("|", "/")[:90]
                mine = (
                    f"{'yes' if a['equivalent'] else 'NO'} ({a['relative_difference']:.1e}) | "
                    f"{a['params_kept']:.1%} | {a['macs_kept']:.1%} | {a['seconds']:.1f} | "
                    f"{a['head_groups']} ({a['head_groups_kept']}) | {why}"
                )
            if "params_kept" in p:
                peer = f"{p['params_kept']:.1%}{'' if p['runs'] else ' (fails to run)'} | "
                peer += f"{p['macs_kept']:.1%}"
            else:
                peer = f"crash: {p.get('error', '?')[:60]} | "
            lines.append(f"| {r['model']} | {mine} | {peer} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/vit.jsonl")
    ap.add_argument("--one", help="run one model here and print its row (used by the parent)")
    ap.add_argument("--table", help="print the Markdown table of a results file")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--models", nargs="*", help="these models instead of one per family")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.one:
        torch.set_num_threads(1)
        print(json.dumps(one(args.one)))
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
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", name],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
            lines = proc.stdout.strip().splitlines()
            row = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
            if row is None:
                row = {"model": name, "error": proc.stderr.strip().splitlines()[-1][:300]}
        except subprocess.TimeoutExpired:
            row = {"model": name, "error": f"timeout after {args.timeout} s"}
        row["wall_seconds"] = time.perf_counter() - start
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(name, json.dumps(row)[:300], flush=True)


if __name__ == "__main__":
    main()
