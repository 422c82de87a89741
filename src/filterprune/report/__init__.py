"""Measurement and reporting: what pruning gained (params, MACs, size, latency) and lost (metrics).

Importing this package loads only torch; matplotlib, safetensors, onnx and onnxruntime are
imported inside the functions that need them (``pip install filterprune[report]`` /
``filterprune[onnx]``).
"""

from filterprune.measure.counting import Counts, count, count_params, per_module_macs
from filterprune.measure.filesize import bytes_to_mb, checkpoint_size_bytes
from filterprune.measure.latency import (
    LatencyResult,
    efficiency,
    macs_reduction_ratio,
    measure_latency,
)
from filterprune.measure.latency_config import LatencyConfig, latency_fields, measure_latencies
from filterprune.report.deploy import DeployCheck, check_deployment, deployment_table
from filterprune.report.export import (
    OnnxReport,
    check_torch_export,
    check_torchscript,
    export_onnx,
)
from filterprune.report.formatting import format_value
from filterprune.report.latency_table import latency_table
from filterprune.report.plots import (
    plot_channels,
    plot_latency_vs_macs,
    plot_metric_vs_macs,
    plot_run_overview,
    plot_score_distributions,
)
from filterprune.report.render import table_from_json, to_csv, to_html, to_json, to_markdown
from filterprune.report.run_report import RunReport, run_tables, write_run_report
from filterprune.report.summary import write_summary
from filterprune.report.tables import Column, Table, iteration_table, layer_table

__all__ = [
    "Column",
    "Counts",
    "DeployCheck",
    "LatencyConfig",
    "LatencyResult",
    "OnnxReport",
    "RunReport",
    "Table",
    "bytes_to_mb",
    "check_deployment",
    "check_torch_export",
    "check_torchscript",
    "checkpoint_size_bytes",
    "count",
    "count_params",
    "deployment_table",
    "efficiency",
    "export_onnx",
    "format_value",
    "iteration_table",
    "latency_fields",
    "latency_table",
    "layer_table",
    "macs_reduction_ratio",
    "measure_latencies",
    "measure_latency",
    "per_module_macs",
    "plot_channels",
    "plot_latency_vs_macs",
    "plot_metric_vs_macs",
    "plot_run_overview",
    "plot_score_distributions",
    "run_tables",
    "table_from_json",
    "to_csv",
    "to_html",
    "to_json",
    "to_markdown",
    "write_run_report",
    "write_summary",
]
