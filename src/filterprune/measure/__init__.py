"""Measuring a model: parameters, MACs, per-layer costs, activation memory, latency, file size.

The ground floor that criteria, the loop and the reports all use: it imports torch and nothing
else of filterprune. ``safetensors`` is imported inside :func:`checkpoint_size_bytes`.

>>> from filterprune.measure import count, measure_latency
>>> count(model, torch.randn(1, 3, 32, 32))            # doctest: +SKIP
Counts(params=..., macs=...)
"""

from filterprune.measure.costs import LAYER_COSTS, layer_costs
from filterprune.measure.counting import Counts, count, count_params, per_module_macs
from filterprune.measure.filesize import bytes_to_mb, checkpoint_size_bytes
from filterprune.measure.latency import (
    NOISY_IQR_FRACTION,
    ROUNDS_DISAGREE_FRACTION,
    LatencyComparison,
    LatencyResult,
    compare_latency,
    efficiency,
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
    "latency_fields",
    "layer_costs",
    "machine_info",
    "macs_reduction_ratio",
    "measure_latencies",
    "measure_latency",
    "per_module_macs",
]
