"""Deployment checks of a model and the table that compares them: does the pruned model still
export (ONNX with onnxruntime parity and CPU latency, ``torch.export``, TorchScript) wherever the
original did?"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from filterprune.measure._forward import ExampleInputs
from filterprune.report.export import (
    OnnxReport,
    check_torch_export,
    check_torchscript,
    export_onnx,
)
from filterprune.report.tables import Column, Table

from ..errors import ConfigError

__all__ = ["DeployCheck", "check_deployment", "deployment_table"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployCheck:
    """Outcome of :func:`check_deployment` for one model; JSON-ready via :meth:`to_dict`.

    Attributes:
        label: Name of the model in the report, e.g. ``"original"`` or ``"final"``.
        torch_export: ``torch.export`` works and matches PyTorch (``None`` = not checked).
        torchscript: TorchScript (trace, else script) works and matches (``None`` = not checked).
        onnx: The ONNX export report (``None`` when not exported or the export failed).
        onnx_error: Why the ONNX export failed (``None`` when it worked or was not tried).
    """

    label: str
    torch_export: bool | None
    torchscript: bool | None
    onnx: OnnxReport | None
    onnx_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_deployment(
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    label: str,
    onnx_path: str | Path | None = None,
    atol: float = 1e-4,
    repeats: int = 20,
    threads: int | None = None,
) -> DeployCheck:
    """Run the deployment checks on ``model`` (in eval mode; training flags are restored).

    Args:
        model: The network.
        example_inputs: A tensor or tuple of tensors; fixed in the exported graphs.
        label: Name of the model in the report.
        onnx_path: Export ONNX there (and, with onnxruntime, compare and time it); ``None``
            skips ONNX.
        atol: Largest absolute output difference that counts as a match, for every exporter.
        repeats: Timed onnxruntime runs.
        threads: onnxruntime intra-op threads (``None``: ``torch.get_num_threads()``).

    Returns:
        A :class:`DeployCheck`. Failures are recorded, never raised, except a missing ONNX
        exporter dependency (ImportError).
    """
    onnx = error = None
    if onnx_path is not None:
        try:
            onnx = export_onnx(
                model, example_inputs, onnx_path, atol=atol, repeats=repeats, threads=threads
            )
        except RuntimeError as err:
            error = str(err).splitlines()[0][:500]
            logger.warning("%s: %s", label, error)
    return DeployCheck(
        label=label,
        torch_export=check_torch_export(model, example_inputs, atol=atol),
        torchscript=check_torchscript(model, example_inputs, atol=atol),
        onnx=onnx,
        onnx_error=error,
    )


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "NO")


def deployment_table(checks: Sequence[DeployCheck]) -> Table:
    """Compare the deployment checks of several models; the first is the reference (original).

    Columns: model, ``torch.export`` and TorchScript (yes/NO), ONNX exporter and opset, file size
    (MB), largest output difference onnxruntime vs. PyTorch, parity, onnxruntime CPU median
    latency (ms), each model timed on its own (no speed-up is divided from these; the latency
    table has the side-by-side one). A note names every check that the first model passes and
    a later one fails.
    """
    if not checks:
        raise ConfigError("deployment_table: checks is empty; pass at least one DeployCheck")
    rows = []
    for check in checks:
        onnx = check.onnx
        latency = onnx.ort_latency_ms if onnx else None
        exporter = onnx.exporter if onnx else ("failed" if check.onnx_error else None)
        rows.append(
            {
                "model": check.label,
                "torch_export": _yes_no(check.torch_export),
                "torchscript": _yes_no(check.torchscript),
                "onnx_exporter": exporter,
                "onnx_opset": onnx.opset if onnx else None,
                "onnx_mb": onnx.size_bytes / 1e6 if onnx else None,
                "onnx_max_abs_diff": onnx.max_abs_diff if onnx else None,
                "onnx_parity": _yes_no(onnx.matches) if onnx else None,
                "ort_latency_ms": latency,
            }
        )
    notes = []
    reference = checks[0]
    for check in checks[1:]:
        for what, before, after in (
            ("torch.export", reference.torch_export, check.torch_export),
            ("TorchScript", reference.torchscript, check.torchscript),
            ("ONNX export", reference.onnx is not None, check.onnx is not None),
            (
                "ONNX parity",
                bool(reference.onnx and reference.onnx.matches),
                bool(check.onnx and check.onnx.matches),
            ),
        ):
            if before and not after:
                notes.append(f"{check.label}: {what} fails although {reference.label} passes")
    notes += [
        f"{c.label}: exported by the dynamo exporter; the legacy one failed ({c.onnx.fallback})"
        for c in checks
        if c.onnx and c.onnx.fallback
    ]
    if any(c.onnx_error for c in checks):
        notes += [f"{c.label}: ONNX export failed: {c.onnx_error}" for c in checks if c.onnx_error]
    if any(c.onnx and not c.onnx.checked for c in checks):
        notes.append("onnxruntime is not installed: no ONNX parity or latency (pip install "
                     "filterprune[onnx])")  # fmt: skip
    columns = [
        Column("model", "Model", "text"),
        Column("torch_export", "torch.export", "text"),
        Column("torchscript", "TorchScript", "text"),
        Column("onnx_exporter", "ONNX exporter", "text"),
        Column("onnx_opset", "opset", "int"),
        Column("onnx_mb", "ONNX (MB)", "mb"),
        Column("onnx_max_abs_diff", "max |ORT − torch|", "metric"),
        Column("onnx_parity", "ONNX parity", "text"),
        Column("ort_latency_ms", "ORT CPU latency (ms)", "ms"),
    ]
    return Table("Deployment", columns, rows, notes)
