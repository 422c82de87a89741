"""What to time and how: devices, batch sizes, input size, threads, rounds, repeats; JSON.

:class:`LatencyConfig` is the latency part of a pruning run's configuration.
:func:`compare_latencies` times the original and the current model side by side with it on
every requested device and batch size (see :func:`~filterprune.measure.compare_latency`) and
returns plain records, ready for the run log and the report's latency table;
:func:`measure_latencies` times one model alone (absolute latency, no speed-up).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import ExampleInputs, as_input_tuple, model_device

from ..errors import ConfigError

__all__ = ["LatencyConfig", "compare_latencies", "latency_fields", "measure_latencies"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(name: str, value: Any, need: str) -> None:
    raise ConfigError(f"LatencyConfig.{name}: {need}, got {value!r}")


@dataclass(frozen=True)
class LatencyConfig:
    """How to time a model (see :func:`filterprune.measure.measure_latency` for the method).

    Attributes:
        batch_sizes: Batch sizes to time; the first is the one reported in the iteration table.
        devices: Devices to time on, e.g. ``("cpu", "cuda")``. A CUDA entry is skipped when CUDA
            is not available, so the default times on CPU everywhere and on the GPU where there is
            one. A model on another device is copied there for the timing.
        input_size: Spatial size of the timed input, e.g. ``(224, 224)``: replaces the trailing
            dimensions of the example input's first sample (filled with random numbers); ``()``
            times the example input itself.
        threads: CPU threads during the timing (``torch.set_num_threads``), fixed for every
            iteration; ``None`` keeps the current count (recorded with each result). The default,
            1 (as in ``torch.utils.benchmark``), gives a speed-up that holds on a busy machine:
            measured, the loop's speed-up under a second process keeping both cores busy stayed
            within 3 % of the one measured alone at 1 thread, but not at 2 (docs/benchmarks.md).
            Set the deployment's thread count to time what it will see.
        rounds: Alternating rounds of the original and the current model (each round times
            both); the speed-up is the median round ratio, its spread the lowest and highest.
        repeats: Minimum number of timed calls per model, round, device and batch size.
        warmup: Untimed calls of each model before timing.
        min_run_time: Minimum seconds of timed calls per model, round, device and batch size.
    """

    batch_sizes: tuple[int, ...] = (1,)
    devices: tuple[str, ...] = ("cpu", "cuda")
    input_size: tuple[int, ...] = ()
    threads: int | None = 1
    rounds: int = 5
    repeats: int = 10
    warmup: int = 5
    min_run_time: float = 0.1

    def __post_init__(self) -> None:
        for name in ("batch_sizes", "devices", "input_size"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                _fail(name, value, "need a list")
            object.__setattr__(self, name, tuple(value))
        if not self.batch_sizes or not all(_is_int(b) and b > 0 for b in self.batch_sizes):
            _fail("batch_sizes", self.batch_sizes, "need a non-empty list of ints > 0, e.g. [1, 8]")
        if not self.devices or not all(isinstance(d, str) and d for d in self.devices):
            _fail("devices", self.devices, "need a non-empty list of device names, e.g. ['cpu']")
        for device in self.devices:
            try:
                torch.device(device)
            except RuntimeError:
                _fail("devices", device, "need device names such as 'cpu', 'cuda' or 'cuda:1'")
        if not all(_is_int(s) and s > 0 for s in self.input_size):
            _fail("input_size", self.input_size, "need ints > 0 such as [224, 224], or []")
        if self.threads is not None and not (_is_int(self.threads) and self.threads > 0):
            _fail("threads", self.threads, "need an int > 0 or None (keep the current count)")
        if not _is_int(self.rounds) or self.rounds < 1:
            _fail("rounds", self.rounds, "need an int >= 1 (3 or more give a spread)")
        if not _is_int(self.repeats) or self.repeats < 1:
            _fail("repeats", self.repeats, "need an int >= 1")
        if not _is_int(self.warmup) or self.warmup < 0:
            _fail("warmup", self.warmup, "need an int >= 0")
        ok = isinstance(self.min_run_time, int | float) and not isinstance(self.min_run_time, bool)
        if not ok or not math.isfinite(self.min_run_time) or not 0 <= self.min_run_time <= 3600:
            _fail("min_run_time", self.min_run_time, "need a number of seconds in [0, 3600]")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyConfig:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"LatencyConfig: expected a dict, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"LatencyConfig: unknown keys {unknown}; known keys: {known}")
        return cls(**dict(data))

    def available_devices(self) -> list[torch.device]:
        """The configured devices this machine has (CUDA entries dropped without CUDA)."""
        out = []
        for name in self.devices:
            device = torch.device(name)
            backend = getattr(torch, device.type, None) if device.type != "cpu" else None
            if device.type != "cpu" and not (backend and backend.is_available()):
                continue
            if device not in out:
                out.append(device)
        return out


def _timed_input(example_inputs: ExampleInputs, input_size: tuple[int, ...]) -> ExampleInputs:
    if not input_size:
        return example_inputs
    inputs = as_input_tuple(example_inputs)
    if len(inputs) != 1 or inputs[0].dim() < len(input_size) + 1:
        raise ConfigError(
            f"LatencyConfig.input_size={list(input_size)} needs a single example tensor with a "
            f"batch dimension and {len(input_size)} trailing dimensions to replace; got "
            f"{[tuple(t.shape) for t in inputs]} (use input_size=[] to time the example input)"
        )
    kept = inputs[0].shape[1 : inputs[0].dim() - len(input_size)]
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, *kept, *input_size, generator=generator, dtype=inputs[0].dtype)
    return sample.to(inputs[0].device)


def _macs_by_batch(model: nn.Module, timed: ExampleInputs, config: LatencyConfig) -> dict[int, int]:
    from filterprune.measure.counting import count
    from filterprune.measure.latency import _batched

    return {b: count(model, _batched(as_input_tuple(timed), b)).macs for b in config.batch_sizes}


def measure_latencies(
    model: nn.Module, example_inputs: ExampleInputs, config: LatencyConfig
) -> list[dict[str, Any]]:
    """Time ``model`` alone on every available device and batch size of ``config``.

    One round per device and batch size (``config.rounds`` is for comparisons). No speed-up can
    come from these records; use :func:`compare_latencies` for one.

    Returns:
        One dict per (device, batch size), devices in config order: the fields of
        :class:`~filterprune.measure.LatencyResult` plus ``macs``, the multiply-accumulates
        of one forward pass on the timed batch.
    """
    from filterprune.measure.latency import measure_latency

    timed = _timed_input(example_inputs, config.input_size)
    macs = _macs_by_batch(model, timed, config)
    records = []
    for device in config.available_devices():
        results = measure_latency(
            model,
            timed,
            batch_sizes=config.batch_sizes,
            repeats=config.repeats,
            warmup=config.warmup,
            threads=config.threads,
            device=device,
            min_run_time=config.min_run_time,
        )
        records += [dict(dataclasses.asdict(r), macs=macs[r.batch_size]) for r in results]
    return records


def compare_latencies(
    original: nn.Module, model: nn.Module, example_inputs: ExampleInputs, config: LatencyConfig
) -> list[dict[str, Any]]:
    """Time ``original`` and ``model`` side by side on every device and batch size of ``config``.

    Args:
        original: The reference, e.g. the model before pruning (may be ``model`` itself).
        model: The current model.
        example_inputs: A tensor ``(N, C, H, W)`` or tuple of tensors; see
            ``LatencyConfig.input_size``. Both models get the same timed input.
        config: What to time.

    Returns:
        One dict per (device, batch size), devices in config order:
        :meth:`~filterprune.measure.LatencyComparison.to_dict` (the model's latency fields,
        ``original_median_ms``, ``speedup`` with ``speedup_low``/``speedup_high``, ``flags``)
        plus ``macs`` and ``original_macs`` of the timed batch (for the efficiency).
    """
    from filterprune.measure.latency import compare_latency

    timed = _timed_input(example_inputs, config.input_size)
    macs = _macs_by_batch(model, timed, config)
    original_macs = macs if original is model else _macs_by_batch(original, timed, config)
    records = []
    for device in config.available_devices():
        results = compare_latency(
            original,
            model,
            timed,
            batch_sizes=config.batch_sizes,
            rounds=config.rounds,
            repeats=config.repeats,
            warmup=config.warmup,
            threads=config.threads,
            device=device,
            min_run_time=config.min_run_time,
        )
        records += [
            dict(r.to_dict(), macs=macs[r.batch_size], original_macs=original_macs[r.batch_size])
            for r in results
        ]
    return records


def latency_fields(records: Sequence[Mapping[str, Any]], model: nn.Module) -> dict[str, Any]:
    """Row fields of a run log from :func:`compare_latencies` (or :func:`measure_latencies`).

    ``latency_ms`` / ``latency_iqr_ms`` are the median / IQR at the first batch size on the
    model's own device (the first device measured if that one was not); from a comparison also
    ``original_latency_ms``, ``speedup``, ``speedup_low``, ``speedup_high``, the speed-up of
    each alternating round (``round_speedups``) and ``latency_flags`` of that record. ``latency`` keeps all records. Empty records (no
    configured device available) give ``{}``.
    """
    if not records:
        return {}
    own = str(model_device(model))
    primary = next((r for r in records if r["device"].split(":")[0] == own.split(":")[0]), None)
    primary = primary or records[0]
    fields = {"latency_ms": primary["median_ms"], "latency_iqr_ms": primary["iqr_ms"]}
    if "speedup" in primary:
        fields.update(
            original_latency_ms=primary["original_median_ms"],
            speedup=primary["speedup"],
            speedup_low=primary["speedup_low"],
            speedup_high=primary["speedup_high"],
            round_speedups=list(primary["round_speedups"]),
            latency_flags=list(primary["flags"]),
        )
    return {**fields, "latency": [dict(r) for r in records]}
