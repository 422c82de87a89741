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
    LatencyResult,
    efficiency,
    macs_reduction_ratio,
    measure_latency,
    speedup,
    speedups,
)
from filterprune.measure.latency_config import LatencyConfig, latency_fields, measure_latencies

__all__ = [
    "LAYER_COSTS",
    "Counts",
    "LatencyConfig",
    "LatencyResult",
    "bytes_to_mb",
    "checkpoint_size_bytes",
    "count",
    "count_params",
    "efficiency",
    "latency_fields",
    "layer_costs",
    "macs_reduction_ratio",
    "measure_latencies",
    "measure_latency",
    "per_module_macs",
    "speedup",
    "speedups",
]
