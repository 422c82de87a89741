"""Measuring a model: parameters, MACs, per-layer costs, activation memory, latency, file size.

The ground floor that criteria, the loop and the reports all use: it imports torch and nothing
else of filterprune. ``safetensors`` is imported inside :func:`checkpoint_size_bytes`. Each
name loads its module on first use, so counting MACs does not load latency timing.

>>> from filterprune.measure import count, measure_latency
>>> count(model, torch.randn(1, 3, 32, 32))            # doctest: +SKIP
Counts(params=..., macs=...)
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_face

if TYPE_CHECKING:
    from filterprune.measure.costs import LAYER_COSTS, layer_costs
    from filterprune.measure.counting import Counts, count, count_params, per_module_macs
    from filterprune.measure.filesize import bytes_to_mb, checkpoint_size_bytes
    from filterprune.measure.latency import (
        NOISY_IQR_FRACTION,
        ROUNDS_DISAGREE_FRACTION,
        FloorComparison,
        LatencyComparison,
        LatencyResult,
        busy,
        compare_latency,
        efficiency,
        floor_speedup,
        macs_reduction_ratio,
        measure_latency,
    )
    from filterprune.measure.latency_config import (
        LatencyConfig,
        compare_latencies,
        latency_fields,
        measure_latencies,
    )
    from filterprune.measure.machine import cpu_model, machine_info

_HOMES = {
    "LAYER_COSTS": ".costs",
    "layer_costs": ".costs",
    "Counts": ".counting",
    "count": ".counting",
    "count_params": ".counting",
    "per_module_macs": ".counting",
    "bytes_to_mb": ".filesize",
    "checkpoint_size_bytes": ".filesize",
    "NOISY_IQR_FRACTION": ".latency",
    "ROUNDS_DISAGREE_FRACTION": ".latency",
    "LatencyComparison": ".latency",
    "LatencyResult": ".latency",
    "compare_latency": ".latency",
    "efficiency": ".latency",
    "FloorComparison": ".latency",
    "busy": ".latency",
    "floor_speedup": ".latency",
    "macs_reduction_ratio": ".latency",
    "measure_latency": ".latency",
    "LatencyConfig": ".latency_config",
    "compare_latencies": ".latency_config",
    "latency_fields": ".latency_config",
    "measure_latencies": ".latency_config",
    "cpu_model": ".machine",
    "machine_info": ".machine",
}
__getattr__, __dir__ = lazy_face(__name__, _HOMES)

__all__ = [
    "LAYER_COSTS",
    "NOISY_IQR_FRACTION",
    "ROUNDS_DISAGREE_FRACTION",
    "Counts",
    "LatencyComparison",
    "LatencyConfig",
    "LatencyResult",
    "bytes_to_mb",
    "checkpoint_size_bytes",
    "compare_latencies",
    "compare_latency",
    "count",
    "count_params",
    "cpu_model",
    "efficiency",
    "FloorComparison",
    "busy",
    "floor_speedup",
    "latency_fields",
    "layer_costs",
    "machine_info",
    "macs_reduction_ratio",
    "measure_latencies",
    "measure_latency",
    "per_module_macs",
]
