"""Latency where the model is deployed: a model exported to ONNX and run by onnxruntime, timed
side by side with another by the same alternating rounds as eager PyTorch.

:class:`OrtModel` wraps an ``nn.Module`` so that calling it runs the ONNX export of that module
in an onnxruntime CPU session (one export and session per input shape, made before timing by
:meth:`OrtModel.prepare`). :func:`compare_ort_latency` hands two such wrappers to
:func:`filterprune.measure.compare_latency`, so the ratio comes from one process timing both
models in alternating rounds, as the eager speed-up does. A width that helps one runtime can
hurt the other: oneDNN and onnxruntime's MLAS block channels differently.

Needs the ``onnx`` extra (``pip install "filterprune[onnx]"``).
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import ExampleInputs, as_input_tuple, eval_mode

from ..errors import MissingDependencyError

__all__ = ["OrtModel", "compare_ort_latency", "ort_available"]

HINT = 'pip install "filterprune[onnx]"'


def ort_available() -> bool:
    """Whether onnxruntime can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


class OrtModel(nn.Module):
    """``module`` exported to ONNX and run by an onnxruntime CPU session with ``threads`` threads.

    Calling it with tensors of a prepared shape runs the session on their NumPy views and returns
    nothing (the timing needs the call, not the output).
    """

    def __init__(self, module: nn.Module, threads: int) -> None:
        super().__init__()
        if not ort_available():
            raise MissingDependencyError(f"onnxruntime latency needs onnxruntime: {HINT}")
        self.__dict__["module"] = module  # not a submodule: timing copies must not copy it
        self.threads = threads
        self.sessions: dict[tuple[tuple[int, ...], ...], tuple[Any, dict[str, Any]]] = {}

    def prepare(self, inputs: tuple[torch.Tensor, ...]) -> None:
        """Export the module at these input shapes and open its session (once per shape)."""
        key = tuple(tuple(t.shape) for t in inputs)
        if key in self.sessions:
            return
        import onnxruntime as ort

        from .export import _run_exporter

        with tempfile.TemporaryDirectory(prefix="filterprune-ort-") as folder:
            path = Path(folder) / "model.onnx"
            with eval_mode(self.module), torch.no_grad():
                _run_exporter(self.module, inputs, path, None)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs, strict=False)}
        self.sessions[key] = (session, feed)

    def forward(self, *inputs: torch.Tensor) -> None:
        key = tuple(tuple(t.shape) for t in inputs)
        if key not in self.sessions:
            self.prepare(inputs)
        session, feed = self.sessions[key]
        session.run(None, feed)


def compare_ort_latency(
    reference: nn.Module,
    model: nn.Module,
    example_inputs: ExampleInputs,
    *,
    batch_sizes: Sequence[int] = (1,),
    threads: int = 1,
    rounds: int = 5,
    repeats: int = 10,
) -> list[dict[str, Any]]:
    """Both models exported to ONNX and timed in onnxruntime in alternating rounds.

    Returns:
        One :meth:`~filterprune.measure.LatencyComparison.to_dict` record per batch size, with
        ``runtime: "onnxruntime"`` and ``threads`` the session's intra-op threads.
    """
    from filterprune.measure.latency import _batched, compare_latency

    wrapped = [OrtModel(m, threads) for m in (reference, model)]
    inputs = as_input_tuple(example_inputs)
    for b in batch_sizes:
        for w in wrapped:
            w.prepare(_batched(inputs, b))
    compared = compare_latency(
        wrapped[0], wrapped[1], example_inputs, batch_sizes=batch_sizes, rounds=rounds,
        repeats=repeats, threads=1, device="cpu",
    )  # fmt: skip
    out = []
    for c in compared:
        record = c.to_dict()
        record.update(runtime="onnxruntime", threads=threads)
        out.append(record)
    return out
