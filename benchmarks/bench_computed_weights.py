"""Models whose layers compute their weight from the stored one, pruned at 30 % and checked.

Weight-standardised convs (timm's NFNets: ``ScaledStdConv2d``; BiT's ``StdConv2d``), the legacy
``torch.nn.utils.weight_norm`` and ``spectral_norm`` hooks and their ``parametrizations`` versions
(applied here to every conv and linear of a torchvision ResNet-18). For each model (random
weights; nothing is downloaded): calibrate BatchNorm, randomise norm affine parameters, check the
output depends on the input (``signal``), ``fp.prune(amount=0.3, criterion="l1")``, and compare
with the original whose removed channels are zeroed at every mixing layer's input (GroupNorm
statistics over the kept channels: ``restrict_norms=True``), relative to the output's largest
magnitude (``diff``); ``exact`` below 1e-4. ``frozen`` counts groups kept because a layer computes
its weight (the layer probe's reason). With ``--fold``, ``fp.fold_computed_weights`` first turns
every such layer into a plain one (checked: the output does not change), so its channels prune.

Needs timm and torchvision (the zoo environment built by the shared tool), from the repository root::

    bash ../shared/tools/zoo-venv.sh /work/zoo .
    /work/zoo/bin/python benchmarks/bench_computed_weights.py    # prints the Markdown table
    /work/zoo/bin/python benchmarks/bench_computed_weights.py --fold   # fold_computed_weights first
"""

from __future__ import annotations

import copy
import sys
import time

import torch
from torch import nn
from torch.nn.utils import parametrizations

import filterprune as fp
from filterprune.testing import calibrate_batchnorm, max_difference, output_change, randomize_norms

#: Each layer loses the same share, all layer kinds, no cost term: as the peer prunes by default
#: (filterprune's own default is one global ranking of the convolutions with a cost term).
PEER_SETTINGS = {"scope": "per_group", "layer_types": ()}


def _every_layer(model: nn.Module, wrap) -> nn.Module:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) in (nn.Conv2d, nn.Linear):
                setattr(module, name, wrap(child))
    return model


def _zoo():
    import torchvision_shim  # noqa: F401, I001  (before torchvision: lets it import here)
    import timm
    import torchvision

    return timm, torchvision


def _resnet18(wrap):
    return lambda: _every_layer(_zoo()[1].models.resnet18(num_classes=10), wrap)


def _timm(name: str):
    return lambda: _zoo()[0].create_model(name, num_classes=10)


MODELS = {
    "timm nf_resnet26": _timm("nf_resnet26"),
    "timm eca_nfnet_l0": _timm("eca_nfnet_l0"),
    "timm resnetv2_50x1_bit": _timm("resnetv2_50x1_bit"),
    "timm dm_nfnet_f0 (ScaledStdConv2dSame)": _timm("dm_nfnet_f0"),
    "resnet18 + legacy weight_norm": _resnet18(nn.utils.weight_norm),
    "resnet18 + legacy spectral_norm": _resnet18(nn.utils.spectral_norm),
    "resnet18 + parametrizations.weight_norm": _resnet18(parametrizations.weight_norm),
    "resnet18 + parametrizations.spectral_norm": _resnet18(parametrizations.spectral_norm),
}


def _x(seed: int) -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def run(label: str, build, *, fold: bool) -> dict:
    torch.manual_seed(0)
    model = build().eval()
    calibrate_batchnorm(model, [_x(s) for s in range(2)])
    randomize_norms(model, statistics=False)
    x = _x(0)
    signal = output_change(model, x, _x(1))
    with torch.no_grad():
        before = model(x)  # a legacy weight norm's ``weight`` computed without grad: copyable
    folded = 0
    if fold:
        folded = len(fp.fold_computed_weights(model))
        with torch.no_grad():
            change = float((model(x) - before).abs().max() / before.abs().max())
        assert change < 1e-4, f"{label}: folding changed the output by {change:.1e}"
    original = copy.deepcopy(model).eval()
    start = time.perf_counter()
    graph = fp.analyze(model, x)
    plan = fp.prune(model, x, amount=0.3, criterion="l1", graph=graph, **PEER_SETTINGS)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        scale = float(original(x).abs().max())
    diff = max_difference(original, model, plan, x, restrict_norms=True) / scale
    frozen = sum(any("computes its weight" in r for r in g.reasons) for g in graph.frozen)
    kept = fp.param_count(model) / fp.param_count(original)
    return dict(
        model=label, fold=folded, signal=signal, diff=diff, frozen=frozen, kept=kept, s=seconds
    )


def main() -> None:
    fold = "--fold" in sys.argv
    print(
        "| model | layers folded | signal | diff (relative) | exact "
        "| groups kept for a computed weight | params kept | seconds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, build in MODELS.items():
        r = run(label, build, fold=fold)
        print(
            f"| {r['model']} | {r['fold'] if fold else '-'} | {r['signal']:.2f} | "
            f"{r['diff']:.1e} | {'yes' if r['diff'] < 1e-4 else 'NO'} | {r['frozen']} | "
            f"{r['kept']:.1%} | {r['s']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
