"""What each layer costs: MACs, parameters, output activation memory, or measured forward time.

:func:`layer_costs` measures one number per named module; the cost regularisation of the
criteria (``filterprune.criteria.regularize``) shares it among the layer's channels.

FLOPs are a poor proxy for time where a layer is bound by memory traffic rather than arithmetic:
high-resolution early layers move large activations at any batch size, and at batch 1 a large
fully connected layer is bound by reading its weights. ``cost="latency"`` therefore measures
each layer on this machine, at the batch size of the example inputs: conv and linear layers
from the latency lookup table (:mod:`filterprune.measure.latency_table`: the layer alone, at its
widths, cached per machine), every other layer by timing its forward inside the model.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import ExampleInputs, as_input_tuple, eval_mode

from ..errors import ConfigError

__all__ = ["LAYER_COSTS", "layer_costs"]

LAYER_COSTS = ("flops", "params", "memory", "latency")

Hook = Callable[[str], Callable[..., None]]


@contextlib.contextmanager
def _hooked(
    model: nn.Module, modules: Mapping[str, nn.Module], pre: Hook | None, post: Hook
) -> Iterator[nn.Module]:
    """Hooks ``pre(name)``/``post(name)`` on every module; yields the model for a no-grad forward.

    The model's training flags are restored and the hooks removed afterwards.
    """
    handles = []
    for n, m in modules.items():
        if pre is not None:
            handles.append(m.register_forward_pre_hook(pre(n)))
        handles.append(m.register_forward_hook(post(n)))
    try:
        with eval_mode(model), torch.no_grad():
            yield model
    finally:
        for h in handles:
            h.remove()


def _module_latency(
    model: nn.Module,
    modules: Mapping[str, nn.Module],
    args: tuple[torch.Tensor, ...],
    repeats: int = 5,
) -> dict[str, float]:
    """Per module: median over ``repeats`` timed passes of the model of its forward seconds.

    One untimed pass warms up. Forward pre-hooks and hooks around each module read
    ``time.perf_counter``; a module called several times in one pass has its calls summed. On
    CUDA the device is synchronised at both hooks, so the times are the layer's and not the
    launch's.
    """
    cuda = any(a.is_cuda for a in args)
    started: dict[str, float] = {}
    this_pass: dict[str, float] = {}
    times: dict[str, list[float]] = {n: [] for n in modules}

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def pre(n: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inputs: Any) -> None:
            started[n] = now()

        return hook

    def post(n: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inputs: Any, out: Any) -> None:
            this_pass[n] = this_pass.get(n, 0.0) + now() - started.pop(n)

        return hook

    with _hooked(model, modules, pre, post) as hooked:
        hooked(*args)  # warm-up: its times are dropped
        for _ in range(repeats):
            this_pass.clear()
            hooked(*args)
            for n, seconds in this_pass.items():
                times[n].append(seconds)
    return {n: statistics.median(t) if t else 0.0 for n, t in times.items()}


def _output_elements(
    model: nn.Module, modules: Mapping[str, nn.Module], args: tuple[torch.Tensor, ...]
) -> dict[str, float]:
    sizes: dict[str, float] = {}

    def post(n: str) -> Callable[..., None]:
        def hook(mod: nn.Module, inputs: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                sizes[n] = float(out[:1].numel())

        return hook

    with _hooked(model, modules, None, post) as hooked:
        hooked(*args)
    return sizes


def layer_costs(
    model: nn.Module,
    modules: Mapping[str, nn.Module],
    example_inputs: ExampleInputs,
    cost: str = "flops",
) -> dict[str, float]:
    """One cost per named module of ``model``.

    Args:
        model: The network, run once (or, for ``latency``, six times) in eval mode, no grad.
        modules: Name -> submodule of ``model`` to measure (e.g. ``dict(model.named_modules())``).
        example_inputs: A tensor or a tuple of tensors, the positional inputs of ``model``.
        cost: ``"flops"``: MACs of the module on the example batch; ``"params"``: its own
            parameter elements; ``"memory"``: elements of its output for one sample (0 for a
            module whose output is not a tensor); ``"latency"``: median seconds of its forward.

    Returns:
        ``{name: cost}`` for every name in ``modules`` (a module that did not run costs 0 or is
        missing for ``memory``).
    """
    if cost not in LAYER_COSTS:
        raise ConfigError(f"cost must be one of {', '.join(LAYER_COSTS)}, got {cost!r}")
    args = as_input_tuple(example_inputs)
    if cost == "latency":
        from filterprune.measure.latency_table import layer_table_costs

        tabled = layer_table_costs(model, modules, example_inputs)
        rest = {n: m for n, m in modules.items() if not tabled.get(n)}
        return {**tabled, **_module_latency(model, rest, args)} if rest else tabled
    if cost == "params":
        return {
            n: float(sum(p.numel() for p in m.parameters(recurse=False)))
            for n, m in modules.items()
        }
    if cost == "flops":
        from filterprune.measure.counting import per_module_macs

        macs = per_module_macs(model, example_inputs)
        return {n: float(macs.get(n, 0)) for n in modules}
    return _output_elements(model, modules, args)
