"""Every torchvision classification, segmentation and video model through ``prune`` at 30 %.

For each model (random weights; nothing is downloaded):

1. build it, calibrate its BatchNorm statistics on two random batches and randomise every norm's
   affine parameters and every layer scale (``filterprune.testing``), so the oracle has signal;
2. record how much the output changes between two different inputs (``signal``: near 0 would
   make any comparison meaningless);
3. ``fp.analyze`` + ``fp.prune(amount=0.3, criterion="l1")`` (timed together: ``seconds``);
4. compare the pruned model with the original whose removed channels are zeroed and whose
   LayerNorm/GroupNorm statistics cover the kept channels only
   (``max_difference(..., restrict_norms=True)``), relative to the output's largest magnitude;
   ``equivalent`` when below 1e-4;
5. record parameters and MACs kept (``fp.count`` before and after).

Inputs are small to fit a shared 2-core machine: 64x64 images (299 for Inception v3, whose
auxiliary head runs while calibrating; 224 where the architecture fixes it), 8x64x64 clips
(16x224x224 for MViT and S3D). Results are written as JSON lines,
one model each, so a long run can be resumed (``--resume``).

It needs torchvision's model definitions, which the project does not depend on; build the local
environment with the shared tool, then run from the repository root::

    ../shared/tools/zoo-venv.sh /work/zoo-venv
    PYTHONPATH=src /work/zoo-venv/bin/python benchmarks/bench_torchvision.py \\
        --out benchmarks/results/torchvision.jsonl
    PYTHONPATH=src /work/zoo-venv/bin/python benchmarks/bench_torchvision.py --table \\
        benchmarks/results/torchvision.jsonl     # the Markdown table of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import time
import traceback

import torch

import filterprune as fp
from filterprune.testing import (
    calibrate_batchnorm,
    max_difference,
    output_change,
    randomize_norms,
)

TOLERANCE = 1e-4
FIXED_224 = {"maxvit_t"}
VIT_SIZE = 64  # ViTs take their image size as an argument


#: Each layer loses the same share, all layer kinds, no cost term: as the peer prunes by default
#: (filterprune's own default is one global ranking of the convolutions with a cost term).
PEER_SETTINGS = {"scope": "per_group", "layer_types": ()}


def _models() -> list[tuple[str, str]]:
    import torchvision_shim  # noqa: F401, I001  (before torchvision: lets it import here)
    import torchvision.models as tvm

    found = []
    for family, module in (
        ("classification", tvm),
        ("segmentation", tvm.segmentation),
        ("video", tvm.video),
    ):
        found += [(family, name) for name in tvm.list_models(module=module)]
    return found


def _build(family: str, name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    import torchvision.models as tvm

    kwargs: dict = {}
    shape: tuple[int, ...] = (1, 3, 64, 64)
    if name.startswith("vit_"):
        kwargs["image_size"] = 56 if name.endswith("_14") else VIT_SIZE
        shape = (1, 3, kwargs["image_size"], kwargs["image_size"])
    if name in FIXED_224:
        shape = (1, 3, 224, 224)
    if name == "inception_v3":  # its auxiliary head (run while calibrating) needs 17x17 at 1/16
        shape = (1, 3, 299, 299)
        kwargs["init_weights"] = False
    if name == "googlenet":
        kwargs["init_weights"] = False
    if family == "segmentation":
        kwargs["weights_backbone"] = None
    if family == "video":
        fixed = name.startswith("mvit") or name == "s3d"  # fixed pooling / position sizes
        shape = (1, 3, 16, 224, 224) if fixed else (1, 3, 8, 64, 64)
    model = tvm.get_model(name, weights=None, **kwargs)
    return model, shape


def run_one(family: str, name: str, amount: float) -> dict:
    torch.manual_seed(0)
    model, shape = _build(family, name)
    batches = [torch.randn(2, *shape[1:]) for _ in range(2)]
    with torch.no_grad():  # zero-initialised heads (ViT) would make every output equal
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.nn.Parameter) and weight.dim() > 1 and not weight.any():
                torch.nn.init.normal_(weight, std=0.02)
    calibrate_batchnorm(model, batches)
    randomize_norms(model, statistics=False)
    x, other = torch.randn(shape), torch.randn(shape)
    signal = output_change(model, x, other)
    before = fp.count(model, x)
    original = copy.deepcopy(model)
    start = time.perf_counter()
    graph = fp.analyze(model, x)
    plan = fp.prune(model, x, amount=amount, criterion="l1", graph=graph, **PEER_SETTINGS)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        scale = max(float(t.abs().max()) for t in torch.utils._pytree.tree_flatten(original(x))[0])
    diff = max_difference(original, model, plan, x, restrict_norms=True) / max(scale, 1e-12)
    after = fp.count(model, x)
    kept_groups = [g for g in graph.frozen if not any("model output" in r for r in g.reasons)]
    return {
        "model": name,
        "family": family,
        "input": list(shape),
        "equivalent": diff < TOLERANCE,
        "relative_difference": diff,
        "signal": signal,
        "params_kept": after.params / before.params,
        "macs_kept": after.macs / before.macs,
        "params": before.params,
        "macs": before.macs,
        "groups": len(graph.groups),
        "prunable_groups": len(graph.prunable),
        "kept_groups": len(kept_groups),
        "first_kept_reason": kept_groups[0].reasons[0] if kept_groups else "",
        "seconds": seconds,
    }


def _table(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    lines = [
        "| model | input | equivalent | rel. difference | signal | params kept | MACs kept | "
        "prune s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | | **error**: {r['error'][:80]} | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input'][2:]))} | "
            f"{'yes' if r['equivalent'] else '**no**'} | {r['relative_difference']:.1e} | "
            f"{r['signal']:.2f} | {r['params_kept']:.3f} | {r['macs_kept']:.3f} | "
            f"{r['seconds']:.1f} |"
        )
    ok = sum(1 for r in rows if r.get("equivalent"))
    lines.append("")
    lines.append(f"{ok} of {len(rows)} models equivalent.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/torchvision.jsonl")
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    parser.add_argument("--skip", nargs="*", default=[], help="model names to leave out")
    parser.add_argument("--amount", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="skip models already in --out")
    parser.add_argument(
        "--shard", default="0/1", metavar="I/N", help="run every N-th model from the I-th"
    )
    parser.add_argument("--table", metavar="JSONL", help="print the Markdown table of a run")
    args = parser.parse_args()
    if args.table:
        print(_table(args.table))
        return
    torch.set_num_threads(args.threads)
    done = set()
    if args.resume and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as f:
            done = {json.loads(line)["model"] for line in f if line.strip()}
    index, count = (int(v) for v in args.shard.split("/"))
    for family, name in _models()[index::count]:
        if (args.only and name not in args.only) or name in args.skip or name in done:
            continue
        try:
            row = run_one(family, name, args.amount)
        except Exception as exc:  # noqa: BLE001 - a crash is a result to record
            traceback.print_exc()
            row = {"model": name, "family": family, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row), flush=True, file=sys.stderr)
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        gc.collect()


if __name__ == "__main__":
    main()
