"""Wall-clock latency of a forward pass, and the speed-up of one model over another, measured
with ``torch.utils.benchmark.Timer``.

Method: the model runs in eval mode under ``torch.inference_mode``. ``warmup`` calls are made
with ``Timer.timeit`` (which adds two calls of its own) to warm caches and estimate the time of
one call ``t``; the warm-up is repeated (up to ``MAX_WARMUP_ROUNDS`` times) while ``t`` still
falls by more than 20 % (thread pools and allocators can take several calls to settle, longer on
a busy machine); then ``Timer.blocked_autorange(min_run_time=max(repeats * t, min_run_time))``
times about ``repeats`` calls, and more blocks are timed until at least ``repeats`` calls were.
``blocked_autorange`` groups very fast calls into blocks (``calls_per_run``) so that timer
overhead stays negligible; median, IQR and mean are over the per-call time of each block. On CUDA the Timer synchronizes the device around every timed block.
The thread count is fixed with ``torch.set_num_threads`` for the measurement and restored after.

A speed-up is only ever measured by :func:`compare_latency`: both models are warmed up, then
timed in alternating rounds in the same process, with the same threads and the same input
tensors (round ``r`` times A then B, round ``r + 1`` B then A, so a slow drift in the machine's
load hits both equally). Each model's latency is the median of its round medians; the speed-up
is the median of the per-round ratios ``median_A(r) / median_B(r)``, each ratio taken from two
timings seconds apart; its spread is the lowest and highest round ratio. The minimum of the
medians is not used: it picks each model's luckiest round separately, perhaps under a different
load, which is again a division of figures from different moments.

A flag marks a figure not to be trusted. A comparison is flagged ``noisy reference`` / ``noisy
model`` when a model's IQR within its rounds exceeds ``NOISY_IQR_FRACTION`` of its median, and
``rounds disagree`` when the rounds next to the median one (the 2nd and 4th of 5 sorted round
ratios; with 4 rounds or fewer the lowest and highest) are further apart than
``ROUNDS_DISAGREE_FRACTION`` of the speed-up: the median could have been any of them, so that is
how far the figure may be off. The outermost rounds are left out of that spread, as they are out
of the median: one round slowed by another process does not move the median, and a flag on it
fired on most comparisons of a shared machine. The thresholds come from repeated A/A comparisons
(a model against its own copy, true speed-up 1.0) on a busy 2-core machine, where they flag about
one in twenty (docs/benchmarks.md, "Calibrating the latency flags").

Spread is not the only way a timing goes wrong. When more processes want the cores than there
are cores, the timing process waits for a core for part of every round, the waits land on both
models and the ratio drifts toward 1 or jumps, often with rounds that agree. On the CPU a
comparison therefore also counts the processor time its process got against the wall time it
took: below ``MIN_CPU_SHARE`` of one core it is flagged ``preempted``. Timed alone, a one-thread
comparison is on a core 99.9 % of its wall time; on the 2-core machine of the benchmarks at load 7
it was on one 22 % of the time, and a timing on a core 54 % of the time read 12.2x for a model
that runs 7.2x alone (docs/benchmarks.md, "Latency as the target").

For such a machine :func:`floor_speedup` reads the speed-up another way: short blocks of calls,
the two models turn by turn, each block kept only when its process held its core the whole
block, each model's time its fastest kept block. The pruning loop decides on it where the rounds
cannot (docs/design.md, "The latency lookup table").
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import ExampleInputs, as_input_tuple, eval_mode, model_device

from ..errors import ConfigError

MAX_WARMUP_ROUNDS = 10
# Flag thresholds, set from A/A comparisons (docs/benchmarks.md, "Calibrating the latency flags").
NOISY_IQR_FRACTION = 0.5  # a model's IQR (within its rounds) above half its median
ROUNDS_DISAGREE_FRACTION = 0.35  # the rounds beside the median further apart than 35 % of it
MIN_CPU_SHARE = 0.8  # on the CPU, a comparison on a core less than 80 % of its wall time: preempted
# The floor comparison (:func:`floor_speedup`), for a machine too busy for the rounds above
CLEAN_SHARE = 0.97  # a block whose threads held their cores at least 97 % of its wall time
FLOOR_BLOCK_SECONDS = 0.002  # each block lasts about this long (one call where a call is longer)
FLOOR_SECONDS = 2.0  # blocks are timed, turn by turn, for about this long
MIN_CLEAN_BLOCKS = 5  # fewer unpreempted blocks of either model: no floor figure
EXTEND = 3  # ... after timing up to this many times ``seconds`` for them
#: Flags (their first word) of a timing the machine disturbed: too busy to decide on
BUSY_FLAGS = ("noisy", "preempted")

__all__ = [
    "MIN_CPU_SHARE",
    "FloorComparison",
    "NOISY_IQR_FRACTION",
    "ROUNDS_DISAGREE_FRACTION",
    "LatencyComparison",
    "LatencyResult",
    "compare_latency",
    "efficiency",
    "floor_speedup",
    "macs_reduction_ratio",
    "measure_latency",
    "median_spread",
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
        round_medians_ms: In a :func:`compare_latency` result, the median of each round (then
            ``median_ms`` is their median and ``iqr_ms`` the median of the rounds' IQRs);
            empty for a single-round :func:`measure_latency` result.
    """

    batch_size: int
    device: str
    threads: int
    median_ms: float
    iqr_ms: float
    mean_ms: float
    runs: int
    calls_per_run: int
    round_medians_ms: tuple[float, ...] = ()

    @property
    def calls(self) -> int:
        """Total number of timed calls."""
        return self.runs * self.calls_per_run

    @property
    def noisy(self) -> bool:
        """The IQR exceeds ``NOISY_IQR_FRACTION`` of the median."""
        return self.iqr_ms > NOISY_IQR_FRACTION * self.median_ms


@dataclass(frozen=True)
class LatencyComparison:
    """Two models timed in alternating rounds: ``reference`` (e.g. the original) and ``model``.

    Attributes:
        reference: The reference model's latency over all rounds.
        model: The compared model's latency over the same rounds.
        speedup: Median over rounds of ``reference / model`` round medians (> 1: faster).
        speedup_low: Lowest round ratio.
        speedup_high: Highest round ratio.
        round_speedups: The ratio of each round, in order.
        flags: Why the figures should not be trusted: ``"noisy reference"`` / ``"noisy
            model"`` (IQR above ``NOISY_IQR_FRACTION`` of the median), ``"rounds disagree"``
            (the rounds beside the median further apart than ``ROUNDS_DISAGREE_FRACTION`` of the
            speed-up; see :func:`median_spread`), ``"preempted (on a core N % of the
            time)"`` (on the CPU, the process got less than ``MIN_CPU_SHARE`` of one core
            while timing: other processes took the cores). Empty = clean.
        cpu_share: Processor time of the timing process over the wall time of the rounds (1.0:
            on a core throughout; more with several threads); ``None`` off the CPU.
    """

    reference: LatencyResult
    model: LatencyResult
    speedup: float
    speedup_low: float
    speedup_high: float
    round_speedups: tuple[float, ...]
    flags: tuple[str, ...] = ()
    cpu_share: float | None = None

    @property
    def batch_size(self) -> int:
        return self.model.batch_size

    @property
    def rounds(self) -> int:
        return len(self.round_speedups)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: the model's fields, ``original_*`` fields and the speed-up."""
        ref = self.reference
        return {
            **dataclasses.asdict(self.model),
            "original_median_ms": ref.median_ms,
            "original_iqr_ms": ref.iqr_ms,
            "original_round_medians_ms": list(ref.round_medians_ms),
            "speedup": self.speedup,
            "speedup_low": self.speedup_low,
            "speedup_high": self.speedup_high,
            "round_speedups": list(self.round_speedups),
            "rounds": self.rounds,
            "flags": list(self.flags),
            "cpu_share": self.cpu_share,
        }


def _batched(inputs: tuple[torch.Tensor, ...], batch_size: int) -> tuple[torch.Tensor, ...]:
    """Repeat the first sample of each input along dim 0 to ``batch_size`` (a contiguous copy)."""
    out = []
    for tensor in inputs:
        if tensor.dim() == 0:
            raise ConfigError("example_inputs must have a batch dimension; got a 0-d tensor")
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


def _check_positive(
    name: str, value: float, *, allow_zero: bool = False, where: str = "measure_latency"
) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where}: {name} must be {bound}, got {value!r}")


def _check_settings(
    where: str,
    batch_sizes: Sequence[int],
    repeats: int,
    warmup: int,
    min_run_time: float,
    threads: int | None,
) -> None:
    if not batch_sizes:
        raise ConfigError(f"{where}: batch_sizes is empty; pass e.g. batch_sizes=(1,)")
    for b in batch_sizes:
        _check_positive("each batch size", b, where=where)
    _check_positive("repeats", repeats, where=where)
    _check_positive("warmup", warmup, allow_zero=True, where=where)
    _check_positive("min_run_time", min_run_time, allow_zero=True, where=where)
    if threads is not None:
        _check_positive("threads", threads, where=where)


def _on_device(
    model: nn.Module, device: str | torch.device | None
) -> tuple[nn.Module, torch.device]:
    """The model on ``device`` (a deep copy when it lives elsewhere) and that device."""
    current = _indexed(model_device(model))
    target = _indexed(torch.device(device)) if device is not None else current
    return (model if target == current else copy.deepcopy(model).to(target)), target


class _Timed:
    """One model's timer on one input: warms up, estimates a call, times blocks of calls."""

    def __init__(
        self, model: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int, warmup: int
    ) -> None:
        def forward() -> None:
            with torch.inference_mode():
                model(*inputs)

        from torch.utils.benchmark import Timer  # on use: it imports setuptools (~0.8 s)

        self.timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
        self.warmup = warmup
        self.estimate = 0.0
        self.number: int | None = None

    def warm_up(self) -> None:
        """Untimed calls until the time of a call stops falling by more than 20 %."""
        number = max(self.warmup, 1)
        estimate = self.timer.timeit(number=number).mean  # synchronizes on accelerators
        for _ in range(MAX_WARMUP_ROUNDS - 1):
            again = self.timer.timeit(number=number).mean
            settled = again > 0.8 * estimate
            estimate = min(estimate, again)
            if settled or self.warmup == 0:
                break
        self.estimate = estimate

    def block_times(self, repeats: int, min_run_time: float) -> tuple[list[float], int]:
        """Seconds per call of each timed block (at least ``repeats`` calls), calls per block.

        The first call lets ``blocked_autorange`` choose the calls per block; later calls (the
        next rounds) keep that block size, so every round's blocks are alike.
        """
        run_time = max(repeats * self.estimate, min_run_time)
        if self.number is None:
            measurement = self.timer.blocked_autorange(min_run_time=run_time)
            self.number = measurement.number_per_run
            times = list(measurement.times)
        else:
            times, spent = [], 0.0
            while spent < run_time or not times:
                times.append(self.timer.timeit(number=self.number).mean)
                spent += times[-1] * self.number
        while len(times) * self.number < repeats:  # calls turned out slower than the estimate
            times.append(self.timer.timeit(number=self.number).mean)
        return times, self.number


def _quartiles(times: Sequence[float]) -> tuple[float, float, float]:
    q = torch.tensor(list(times), dtype=torch.float64).quantile(
        torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    )
    return q[0].item(), q[1].item(), q[2].item()


def _result(
    rounds: Sequence[tuple[list[float], int]],
    *,
    batch_size: int,
    device: torch.device,
    threads: int,
) -> LatencyResult:
    """Statistics over one or more rounds of block times (seconds per call)."""
    stats = [_quartiles(times) for times, _ in rounds]
    every = [t for times, _ in rounds for t in times]
    several = len(rounds) > 1
    return LatencyResult(
        batch_size=batch_size,
        device=str(device),
        threads=threads,
        median_ms=statistics.median(m for _, m, _ in stats) * 1e3,
        iqr_ms=statistics.median(q75 - q25 for q25, _, q75 in stats) * 1e3,
        mean_ms=sum(every) / len(every) * 1e3,
        runs=len(every),
        calls_per_run=rounds[-1][1],
        round_medians_ms=tuple(m * 1e3 for _, m, _ in stats) if several else (),
    )


def _with_threads(threads: int | None, body: Callable[[int], Any]) -> Any:
    previous = torch.get_num_threads()
    n_threads = threads if threads is not None else previous
    try:
        torch.set_num_threads(n_threads)
        return body(n_threads)
    finally:
        torch.set_num_threads(previous)


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
    _check_settings("measure_latency", batch_sizes, repeats, warmup, min_run_time, threads)
    inputs = as_input_tuple(example_inputs)
    model, target = _on_device(model, device)

    def body(n_threads: int) -> list[LatencyResult]:
        out = []
        with eval_mode(model):
            for b in batch_sizes:
                timed = _Timed(model, _to(_batched(inputs, b), target), n_threads, warmup)
                timed.warm_up()
                rounds = [timed.block_times(repeats, min_run_time)]
                out.append(_result(rounds, batch_size=b, device=target, threads=n_threads))
        return out

    return _with_threads(threads, body)


def _to(inputs: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device) for t in inputs)


def median_spread(ratios: Sequence[float]) -> float:
    """How far the median of ``ratios`` may be off: the rounds beside it, apart, over it.

    Sorted, the ratios ``s[k - 1]`` and ``s[j + 1]`` around the median ``s[k..j]`` (``k == j``
    for an odd count) are the values it would take with one round more on either side; their
    distance divided by the median is returned (0.0 for a single round). With 4 rounds or fewer
    that is the whole range; with 5, the 2nd to 4th: the lowest and highest round are left out,
    as the median leaves them out.
    """
    if len(ratios) < 2:
        return 0.0
    s = sorted(ratios)
    low, high = s[max((len(s) - 1) // 2 - 1, 0)], s[min(len(s) // 2 + 1, len(s) - 1)]
    return (high - low) / statistics.median(s)


def _flags(
    reference: LatencyResult,
    model: LatencyResult,
    ratios: Sequence[float],
    cpu_share: float | None = None,
) -> list[str]:
    flags = [f"noisy {name}" for name, r in (("reference", reference), ("model", model)) if r.noisy]
    if median_spread(ratios) > ROUNDS_DISAGREE_FRACTION:
        flags.append("rounds disagree")
    if cpu_share is not None and cpu_share < MIN_CPU_SHARE:
        flags.append(f"preempted (on a core {cpu_share:.0%} of the time)")
    return flags


def compare_latency(
    reference: nn.Module,
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    batch_sizes: Sequence[int] = (1,),
    rounds: int = 5,
    repeats: int = 20,
    warmup: int = 5,
    threads: int | None = 1,
    device: str | torch.device | None = None,
    min_run_time: float = 0.1,
) -> list[LatencyComparison]:
    """Time ``reference`` and ``model`` in alternating rounds; the speed-up of ``model``.

    The method (warm-up of both, ABBA rounds, median of round medians, median of round ratios,
    flags) is in the module docstring. Both models get the same input tensors and threads.

    Args:
        reference: The model to compare against, e.g. the original before pruning. It may be
            the same object as ``model`` (an A/A comparison shows the noise of the machine).
        model: The compared model, e.g. the pruned one.
        example_inputs: A tensor ``(N, ...)`` or tuple of such tensors, fed to both models; for
            batch size ``b`` the first sample is repeated to ``(b, ...)``.
        batch_sizes: Batch sizes to time, each > 0.
        rounds: Alternating rounds (each times both models once), >= 1; 3 or more give a spread.
        repeats: Minimum calls of each model per round.
        warmup: Untimed calls of each model before the first round (see ``measure_latency``).
        threads: CPU threads for both (``torch.set_num_threads``); ``None`` keeps the current.
            The default, 1, keeps the ratio stable when other work shares the cores.
        device: Device to run both on; ``None`` uses ``model``'s device. A model elsewhere is
            deep-copied there.
        min_run_time: Minimum seconds of timed calls per model and round.

    Returns:
        One :class:`LatencyComparison` per batch size, in the order given.
    """
    where = "compare_latency"
    _check_settings(where, batch_sizes, repeats, warmup, min_run_time, threads)
    _check_positive("rounds", rounds, where=where)
    inputs = as_input_tuple(example_inputs)
    model, target = _on_device(model, device)
    same = reference is model
    reference = model if same else _on_device(reference, target)[0]

    def one(b: int, n_threads: int) -> LatencyComparison:
        batch = _to(_batched(inputs, b), target)
        timed = [_Timed(m, batch, n_threads, warmup) for m in (reference, model)]
        for t in timed:
            t.warm_up()
        times: list[list[tuple[list[float], int]]] = [[], []]
        wall, cpu = time.perf_counter(), time.process_time()
        for r in range(rounds):
            for k in (0, 1) if r % 2 == 0 else (1, 0):
                times[k].append(timed[k].block_times(repeats, min_run_time))
        # the share of the rounds' wall time this process ran (on the CPU only: an accelerator's
        # synchronisation may sleep); other processes holding the cores lower it
        wall = time.perf_counter() - wall
        share = (time.process_time() - cpu) / wall if target.type == "cpu" and wall > 0 else None
        ref, out = (_result(t, batch_size=b, device=target, threads=n_threads) for t in times)
        ratios = [
            _quartiles(a)[1] / _quartiles(m)[1] for (a, _), (m, _) in zip(*times, strict=True)
        ]
        return LatencyComparison(
            reference=ref,
            model=out,
            speedup=statistics.median(ratios),
            speedup_low=min(ratios),
            speedup_high=max(ratios),
            round_speedups=tuple(ratios),
            flags=tuple(_flags(ref, out, ratios, share)),
            cpu_share=share,
        )

    def body(n_threads: int) -> list[LatencyComparison]:
        with eval_mode(reference), eval_mode(model):
            return [one(b, n_threads) for b in batch_sizes]

    return _with_threads(threads, body)


@dataclass(frozen=True)
class FloorComparison:
    """The speed-up from each model's fastest unpreempted block (:func:`floor_speedup`).

    Attributes:
        speedup: ``reference_ms / model_ms``; ``None`` when either model had fewer than
            :data:`MIN_CLEAN_BLOCKS` unpreempted blocks (the machine gave the process no core
            long enough even for one block).
        reference_ms, model_ms: Each model's fastest unpreempted block, per call (``nan``
            without one).
        clean_blocks: Unpreempted blocks of the reference and of the model.
        blocks: Blocks timed of each.
    """

    speedup: float | None
    reference_ms: float
    model_ms: float
    clean_blocks: tuple[int, int]
    blocks: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def busy(flags: Sequence[str] | None) -> bool:
    """Whether a comparison's ``flags`` say the machine disturbed it (:data:`BUSY_FLAGS`)."""
    return any(str(flag).startswith(BUSY_FLAGS) for flag in flags or ())


def floor_speedup(
    reference: nn.Module,
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    batch_size: int = 1,
    threads: int | None = 1,
    seconds: float = FLOOR_SECONDS,
) -> FloorComparison:
    """The speed-up of ``model`` over ``reference`` from blocks no other process interrupted.

    For a CPU too busy for :func:`compare_latency`'s rounds (flagged ``preempted`` or
    ``noisy``). Both models are timed turn by turn in short blocks (about
    :data:`FLOOR_BLOCK_SECONDS`, or one call) for about ``seconds``, up to :data:`EXTEND` times
    as long while either has fewer than :data:`MIN_CLEAN_BLOCKS` clean blocks. A block is clean
    when the process's CPU time is at least :data:`CLEAN_SHARE` of the block's wall time times
    the threads, that is when no other process held its cores meanwhile. Each model's time is its
    fastest such block, as the latency lookup table keeps a layer's fastest block: other
    processes can only add to it. Both figures come from one stretch of alternating blocks, so
    the ratio is never of timings from different moments. Against idle side-by-side timings of
    five pruned models on the 2-core benchmark machine it read -16 % to +13 %, idle and with two
    or four other processes spinning, where the rounds read -37 % to +186 % (docs/benchmarks.md,
    "A machine too busy to time").

    Raises:
        ConfigError: For a model on an accelerator, whose time is not the CPU time of this
            process, or a bad setting.
    """
    where = "floor_speedup"
    _check_positive("batch_size", batch_size, where=where)
    _check_positive("seconds", seconds, where=where, allow_zero=False)
    inputs = as_input_tuple(example_inputs)
    model, target = _on_device(model, None)
    if target.type != "cpu":
        raise ConfigError(f"{where}: the models must be on the CPU, got {target}")
    reference = _on_device(reference, target)[0]
    batch = _batched(inputs, batch_size)

    def body(n_threads: int) -> FloorComparison:
        models = (reference, model)
        best, clean, blocks, calls = [math.inf, math.inf], [0, 0], [0, 0], [1, 1]
        with eval_mode(reference), eval_mode(model), torch.inference_mode():
            for k, m in enumerate(models):
                for _ in range(3):  # warm-up
                    m(*batch)
                started = time.perf_counter()
                m(*batch)
                one = max(time.perf_counter() - started, 1e-7)
                calls[k] = max(1, round(FLOOR_BLOCK_SECONDS / one))
            started = time.perf_counter()
            end, last = started + seconds, started + EXTEND * seconds
            turn = 0
            while (now := time.perf_counter()) < end or (
                min(clean) < MIN_CLEAN_BLOCKS and now < last
            ):
                for k in (0, 1) if turn % 2 == 0 else (1, 0):
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(calls[k]):
                        models[k](*batch)
                    wall = time.perf_counter() - wall
                    share = (time.process_time() - cpu) / (wall * n_threads)
                    blocks[k] += 1
                    if share >= CLEAN_SHARE:
                        clean[k] += 1
                        best[k] = min(best[k], wall / calls[k])
                turn += 1
        enough = min(clean) >= MIN_CLEAN_BLOCKS
        return FloorComparison(
            speedup=best[0] / best[1] if enough else None,
            reference_ms=best[0] * 1e3 if clean[0] else math.nan,
            model_ms=best[1] * 1e3 if clean[1] else math.nan,
            clean_blocks=(clean[0], clean[1]),
            blocks=(blocks[0], blocks[1]),
        )

    return _with_threads(threads, body)


def macs_reduction_ratio(macs_before: int, macs_after: int) -> float:
    """Theoretical speedup from compute alone: ``macs_before / macs_after`` (2.0 = half the MACs)."""
    if macs_after <= 0:
        raise ConfigError(f"macs_reduction_ratio: macs_after must be > 0, got {macs_after!r}")
    return macs_before / macs_after


def efficiency(*, speedup: float, macs_before: int, macs_after: int) -> float:
    """Share of the MAC reduction realised as speed: ``speedup / macs_reduction_ratio``.

    1.0 means latency fell exactly in proportion to MACs; below 1.0, memory traffic, framework
    overhead or unpruned layers eat part of the theoretical gain.
    """
    return speedup / macs_reduction_ratio(macs_before, macs_after)
