"""Wall-clock latency of a forward pass, measured with ``torch.utils.benchmark.Timer``.

Method: the model runs in eval mode under ``torch.inference_mode``. ``warmup`` calls are made
with ``Timer.timeit`` (which adds two calls of its own) to warm caches and estimate the time of
one call ``t``; the warm-up is repeated (up to ``MAX_WARMUP_ROUNDS`` times) while ``t`` still
falls by more than 20 % (thread pools and allocators can take several calls to settle, longer on
a busy machine); then ``Timer.blocked_autorange(min_run_time=max(repeats * t, min_run_time))``
times about ``repeats`` calls, and more blocks are timed until at least ``repeats`` calls were.
``blocked_autorange`` groups very fast calls into blocks (``calls_per_run``) so that timer
overhead stays negligible; median, IQR and mean are over the per-call time of each block. On CUDA the Timer synchronizes the device around every timed block.
The thread count is fixed with ``torch.set_num_threads`` for the measurement and restored after.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.benchmark import Timer

from filterprune.measure._forward import ExampleInputs, as_input_tuple, eval_mode, model_device

MAX_WARMUP_ROUNDS = 10

__all__ = [
    "LatencyResult",
    "efficiency",
    "macs_reduction_ratio",
    "measure_latency",
    "speedup",
    "speedups",
]


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one forward pass at one batch size; JSON-ready via ``dataclasses.asdict``.

    Attributes:
        batch_size: Batch size of the timed input.
        device: Device the model ran on, e.g. ``"cpu"`` or ``"cuda:0"``.
        threads: ``torch.get_num_threads()`` during the measurement.
        median_ms: Median time of one call, in milliseconds.
        iqr_ms: Interquartile range (p75 - p25) of the per-call times, in milliseconds.
        mean_ms: Mean time of one call, in milliseconds.
        runs: Number of timed blocks the statistics are computed over.
        calls_per_run: Calls per timed block (1 unless a call is very fast).
    """

    batch_size: int
    device: str
    threads: int
    median_ms: float
    iqr_ms: float
    mean_ms: float
    runs: int
    calls_per_run: int

    @property
    def calls(self) -> int:
        """Total number of timed calls."""
        return self.runs * self.calls_per_run


def _batched(inputs: tuple[torch.Tensor, ...], batch_size: int) -> tuple[torch.Tensor, ...]:
    """Repeat the first sample of each input along dim 0 to ``batch_size`` (a contiguous copy)."""
    out = []
    for tensor in inputs:
        if tensor.dim() == 0:
            raise ValueError("example_inputs must have a batch dimension; got a 0-d tensor")
        if tensor.shape[0] == batch_size:
            out.append(tensor)
        else:
            out.append(tensor[:1].repeat(batch_size, *([1] * (tensor.dim() - 1))))
    return tuple(out)


def _indexed(device: torch.device) -> torch.device:
    """``cuda`` -> ``cuda:<current index>`` so equal devices compare equal."""
    if device.type != "cpu" and device.index is None:
        module = getattr(torch, device.type, None)
        if module is not None and hasattr(module, "current_device"):
            return torch.device(device.type, module.current_device())
    return device


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"measure_latency: {name} must be {bound}, got {value!r}")


def measure_latency(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    batch_sizes: Sequence[int] = (1,),
    repeats: int = 30,
    warmup: int = 5,
    threads: int | None = None,
    device: str | torch.device | None = None,
    min_run_time: float = 0.2,
) -> list[LatencyResult]:
    """Time forward passes of ``model`` at each batch size.

    Args:
        model: The network. Its training flags are restored afterwards. If ``device`` differs from
            the model's device, a deep copy is moved there and the model itself is left alone.
        example_inputs: A tensor of shape ``(N, ...)`` or a tuple of such tensors. For batch size
            ``b`` the first sample of each is repeated to shape ``(b, ...)`` (used as is when
            ``N == b``).
        batch_sizes: Batch sizes to time, each > 0.
        repeats: Minimum number of calls to time at each batch size.
        warmup: Untimed calls before timing at each batch size.
        threads: CPU threads for the measurement (``torch.set_num_threads``); ``None`` keeps the
            current count. The previous count is restored afterwards.
        device: Device to run on; ``None`` uses the model's device.
        min_run_time: Minimum seconds of timed calls at each batch size.

    Returns:
        One :class:`LatencyResult` per batch size, in the order given.
    """
    if not batch_sizes:
        raise ValueError("measure_latency: batch_sizes is empty; pass e.g. batch_sizes=(1,)")
    for b in batch_sizes:
        _check_positive("each batch size", b)
    _check_positive("repeats", repeats)
    _check_positive("warmup", warmup, allow_zero=True)
    _check_positive("min_run_time", min_run_time, allow_zero=True)
    if threads is not None:
        _check_positive("threads", threads)

    inputs = as_input_tuple(example_inputs)
    current = _indexed(model_device(model))
    target = _indexed(torch.device(device)) if device is not None else current
    if target != current:
        model = copy.deepcopy(model).to(target)

    previous_threads = torch.get_num_threads()
    n_threads = threads if threads is not None else previous_threads
    try:
        torch.set_num_threads(n_threads)
        with eval_mode(model):
            return [
                _measure_one(
                    model,
                    _batched(inputs, b),
                    batch_size=b,
                    device=target,
                    threads=n_threads,
                    repeats=repeats,
                    warmup=warmup,
                    min_run_time=min_run_time,
                )
                for b in batch_sizes
            ]
    finally:
        torch.set_num_threads(previous_threads)


def _measure_one(
    model: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    *,
    batch_size: int,
    device: torch.device,
    threads: int,
    repeats: int,
    warmup: int,
    min_run_time: float,
) -> LatencyResult:
    inputs = tuple(t.to(device) for t in inputs)

    def forward() -> None:
        with torch.inference_mode():
            model(*inputs)

    timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
    number = max(warmup, 1)
    estimate = timer.timeit(number=number).mean  # also warms up; synchronizes on accelerators
    for _ in range(MAX_WARMUP_ROUNDS - 1):
        again = timer.timeit(number=number).mean
        settled = again > 0.8 * estimate
        estimate = min(estimate, again)
        if settled or warmup == 0:
            break
    run_time = max(repeats * estimate, min_run_time)
    measurement = timer.blocked_autorange(min_run_time=run_time)
    number = measurement.number_per_run
    times = list(measurement.times)  # seconds per call, one entry per timed block
    while len(times) * number < repeats:  # calls turned out slower than the estimate
        times.append(timer.timeit(number=number).mean)
    q25, median, q75 = torch.tensor(times, dtype=torch.float64).quantile(
        torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    )
    return LatencyResult(
        batch_size=batch_size,
        device=str(device),
        threads=threads,
        median_ms=median.item() * 1e3,
        iqr_ms=(q75 - q25).item() * 1e3,
        mean_ms=sum(times) / len(times) * 1e3,
        runs=len(times),
        calls_per_run=number,
    )


def _median_ms(value: LatencyResult | float) -> float:
    return value.median_ms if isinstance(value, LatencyResult) else float(value)


def speedup(before: LatencyResult | float, after: LatencyResult | float) -> float:
    """Measured speedup ``before / after`` of median latencies (results or milliseconds)."""
    after_ms = _median_ms(after)
    if after_ms <= 0:
        raise ValueError(f"speedup: the 'after' latency must be > 0 ms, got {after_ms!r}")
    return _median_ms(before) / after_ms


def speedups(before: Sequence[LatencyResult], after: Sequence[LatencyResult]) -> dict[int, float]:
    """Speedup per batch size for the batch sizes measured both before and after."""
    after_by_batch = {r.batch_size: r for r in after}
    return {
        r.batch_size: speedup(r, after_by_batch[r.batch_size])
        for r in before
        if r.batch_size in after_by_batch
    }


def macs_reduction_ratio(macs_before: int, macs_after: int) -> float:
    """Theoretical speedup from compute alone: ``macs_before / macs_after`` (2.0 = half the MACs)."""
    if macs_after <= 0:
        raise ValueError(f"macs_reduction_ratio: macs_after must be > 0, got {macs_after!r}")
    return macs_before / macs_after


def efficiency(*, speedup: float, macs_before: int, macs_after: int) -> float:
    """Share of the MAC reduction realised as speed: ``speedup / macs_reduction_ratio``.

    1.0 means latency fell exactly in proportion to MACs; below 1.0, memory traffic, framework
    overhead or unpruned layers eat part of the theoretical gain.
    """
    return speedup / macs_reduction_ratio(macs_before, macs_after)
