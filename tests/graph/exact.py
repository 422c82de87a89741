"""The exactness check the graph tests share: prune a test-zoo model and compare it with the oracle.

:func:`prune_exactly` builds the model with random norm and affine parameters, checks that its
output depends on its input (else the comparison proves nothing), prunes 30 % of every group over
every layer kind (L1), and compares it with the original whose removed channels are zeroed and
whose LayerNorm/GroupNorm statistics cover the kept channels only, relative to the output's scale.
With ``rebuild`` the plan, applied to a freshly built model, must give the same shapes and the
same integer attributes (``width``, ``num_heads``, ...), and the fresh model must run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

import filterprune as fp
from filterprune.testing import max_difference, output_change, randomize_norms


def example(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def int_attributes(model: nn.Module) -> dict:
    """Every public integer attribute of every module: what a plan's count members set."""
    return {
        (n, k): v
        for n, m in model.named_modules()
        for k, v in vars(m).items()
        if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("_")
    }


def prune_exactly(
    name: str,
    build: Callable[[], nn.Module],
    amount: float = 0.3,
    *,
    rebuild: bool = True,
    **options,
) -> tuple[nn.Module, nn.Module, fp.Plan, fp.DependencyGraph]:
    """``(original, pruned, plan, graph)`` of the model ``build()`` makes, checked as above;
    ``options`` go to :func:`filterprune.analyze` and :func:`filterprune.prune`."""
    torch.manual_seed(0)
    model = randomize_norms(build()).eval()
    x = example()
    assert output_change(model, x, example(1)) > 1e-3  # the oracle has signal
    original = copy.deepcopy(model)
    graph = fp.analyze(model, x, **options)
    plan = fp.prune(
        model, x, amount=amount, graph=graph, criterion="l1", scope="per_group", layer_types=(),
        **options,
    )  # fmt: skip
    with torch.no_grad():
        scale = float(original(x).abs().max())
    dims = options.get("heads") == "dims"  # q and k lose positions: their outputs are zeroed too
    diff = max_difference(original, model, plan, x, restrict_norms=True, mask_outputs=dims)
    diff /= scale
    assert diff < 1e-5, f"{name}: pruned differs from the reference by {diff:.2e}"
    if rebuild:
        fresh = build()
        fp.apply_plan(fresh, fp.Plan.from_json(plan.to_json()))
        assert {k: v.shape for k, v in fresh.state_dict().items()} == {
            k: v.shape for k, v in model.state_dict().items()
        }
        assert int_attributes(fresh) == int_attributes(model)  # count members follow the plan
        with torch.no_grad():
            fresh(x)  # and the fresh model runs
    return original, model, plan, graph
