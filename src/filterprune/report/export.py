"""Deployment checks: ONNX export with onnxruntime parity and latency, torch.export, TorchScript.

ONNX exporter choice (checked with torch 2.13 CPU, onnx 1.23, onnxruntime 1.32, onnxscript 0.7):
since torch 2.9 ``torch.onnx.export`` defaults to the torch.export-based ("dynamo") exporter,
which needs the ``onnxscript`` package. :func:`export_onnx` tries the legacy TorchScript-based
exporter (``dynamo=False``) first, which works with only torch installed, and falls back to the
dynamo exporter where the legacy one fails or is gone. The legacy exporter refuses, for example,
``AdaptiveAvgPool2d(7)`` on a map that is not a multiple of 7 (an ImageNet-head VGG on 32x32
input: "output size that are not factor of input size"); the dynamo exporter decomposes it. The
report says which exporter wrote the file, why the legacy one did not, and the opset.
``onnx`` (model checker), ``onnxruntime`` (parity and latency) and ``onnxscript`` (the dynamo
exporter) are optional: ``pip install filterprune[onnx]``.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import statistics
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import (
    ExampleInputs,
    as_input_tuple,
    eval_mode,
    flatten_tensors,
    max_abs_diff,
    model_device,
    to_device,
)

from ..errors import MissingDependencyError, SetupError

__all__ = ["OnnxReport", "check_torch_export", "check_torchscript", "export_onnx"]

logger = logging.getLogger(__name__)
_EXTRA_HINT = "pip install filterprune[onnx]"


@dataclass(frozen=True)
class OnnxReport:
    """Outcome of :func:`export_onnx`; JSON-ready via ``dataclasses.asdict``.

    Attributes:
        path: The written ``.onnx`` file.
        exporter: ``"torchscript"`` (legacy) or ``"dynamo"`` (``torch.export``-based).
        fallback: Why the legacy exporter failed when the dynamo one was used, else ``None``.
        size_bytes: File size of the ONNX model.
        opset: ONNX opset of the default domain, or ``None`` if ``onnx`` is not installed.
        checked: Whether onnxruntime ran the model and compared it with PyTorch.
        max_abs_diff: Largest absolute difference of the outputs (``None`` if not checked).
        matches: ``max_abs_diff <= atol`` (``None`` if not checked).
        ort_latency_ms: Median onnxruntime CPU latency in ms (``None`` if not checked).
        ort_runs: Timed onnxruntime runs behind the median.
        ort_threads: onnxruntime intra-op threads used for the timing.
    """

    path: str
    exporter: str
    size_bytes: int
    opset: int | None
    checked: bool
    max_abs_diff: float | None
    matches: bool | None
    ort_latency_ms: float | None
    ort_runs: int
    ort_threads: int | None
    fallback: str | None = None


def _torch_outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach().cpu() for t in flatten_tensors(model(*inputs))]


@contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Silence the exporters' deprecation warnings and the dynamo exporter's registry notes."""
    noisy = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = noisy.level
    noisy.setLevel(logging.ERROR)
    # The legacy exporter dumps the whole TorchScript graph to the process's stderr when it
    # fails: its log switch is read wrongly (torch 2.13) and so is always on. Mute that one call.
    dump = getattr(torch._C, "_jit_onnx_log", None)
    if dump is not None:
        torch._C._jit_onnx_log = lambda *args: None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX")
            warnings.filterwarnings("ignore", message=".*feature will be removed")
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message="Constant folding")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            yield
    finally:
        noisy.setLevel(level)
        if dump is not None:
            torch._C._jit_onnx_log = dump
            torch._C._jit_set_onnx_log_enabled(False)


def _run_exporter(
    model: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, opset: int | None
) -> tuple[str, str | None]:
    """Export with the legacy exporter, else the dynamo one; return (exporter, why not legacy)."""
    kwargs: dict[str, Any] = {
        "input_names": [f"input_{i}" for i in range(len(inputs))],
        "opset_version": opset,
    }
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:  # torch < 2.5
        torch.onnx.export(model, inputs, str(path), **kwargs)
        return "torchscript", None
    errors: list[tuple[str, Exception]] = []
    attempts = (
        ("torchscript", {"dynamo": False, "verbose": False}),  # no IR dump on failure
        # one self-contained file (no .onnx.data beside it), no progress lines on stdout
        ("dynamo", {"dynamo": True, "external_data": False, "verbose": False}),
    )
    for name, options in attempts:
        try:
            with _quiet_exporters():
                torch.onnx.export(model, inputs, str(path), **options, **kwargs)
        except Exception as err:  # reported below with both exporters' errors
            errors.append((name, err))
            continue
        why = None
        if errors:
            why = f"{errors[0][0]}: {_first_line(errors[0][1])}"
            logger.info("%s: exported with %s (%s failed)", type(model).__name__, name, why)
        return name, why
    detail = "; ".join(f"{n}: {type(e).__name__}: {_first_line(e)}" for n, e in errors)
    if all(isinstance(e, ModuleNotFoundError) for _, e in errors):
        raise MissingDependencyError(
            f"export_onnx: an ONNX exporter dependency is missing ({detail}); "
            f"{_EXTRA_HINT} (the dynamo exporter also needs onnxscript)"
        )
    raise SetupError(
        f"export_onnx: both ONNX exporters failed for {type(model).__name__}: {detail}"
    )


def _first_line(err: Exception) -> str:
    """The first sentence of the error's first line (exporters append pages of IR and links)."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    return text.split(". ")[0][:200]


def _opset(path: Path, *, validate: bool) -> int | None:
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(str(path), load_external_data=False)
    if validate:
        onnx.checker.check_model(str(path))
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _ort_check(
    path: Path,
    inputs: tuple[torch.Tensor, ...],
    reference: list[torch.Tensor],
    *,
    repeats: int,
    threads: int,
) -> tuple[float, float, int]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    arrays = {f"input_{i}": t.detach().cpu().numpy() for i, t in enumerate(inputs)}
    names = [i.name for i in session.get_inputs()]
    if all(n in arrays for n in names):
        feed = {n: arrays[n] for n in names}
    else:
        feed = dict(zip(names, arrays.values(), strict=False))
    outputs = session.run(None, feed)
    diff = max_abs_diff(reference, [torch.from_numpy(o) for o in outputs])
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return diff, statistics.median(times), len(times)


def export_onnx(
    model: nn.Module,
    example_inputs: ExampleInputs,
    path: str | Path,
    *,
    check: bool = True,
    atol: float = 1e-4,
    opset: int | None = None,
    repeats: int = 20,
    threads: int | None = None,
) -> OnnxReport:
    """Export ``model`` to ONNX and, if onnxruntime is installed, check parity and time it.

    The model is exported in eval mode (training flags restored after). With ``check`` and
    ``onnx`` installed the file is validated by ``onnx.checker``; with ``check`` and
    ``onnxruntime`` installed the ONNX model runs on CPU with the example inputs, its outputs are
    compared with PyTorch's, and ``repeats`` runs are timed after 3 warm-up runs.

    Args:
        model: The network.
        example_inputs: A tensor or tuple of tensors; their shapes are fixed in the ONNX graph.
        path: Output ``.onnx`` file (parent folders are created).
        check: Validate, compare and time (needs the ``[onnx]`` extra; skipped without it).
        atol: Largest absolute output difference that counts as a match.
        opset: ONNX opset; ``None`` lets the exporter choose.
        repeats: Timed onnxruntime runs.
        threads: onnxruntime intra-op threads; ``None`` uses ``torch.get_num_threads()``.

    Returns:
        An :class:`OnnxReport`; ``matches`` is False (not an exception) on a parity failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = to_device(as_input_tuple(example_inputs), model_device(model))
    with eval_mode(model):
        reference = _torch_outputs(model, inputs)
        exporter, fallback = _run_exporter(model, inputs, path, opset)

    opset_used = _opset(path, validate=check)
    diff = latency = None
    runs = 0
    n_threads = threads if threads is not None else torch.get_num_threads()
    checked = False
    if check:
        if importlib.util.find_spec("onnxruntime") is None:
            logger.info("onnxruntime not installed; skipping ONNX parity (%s)", _EXTRA_HINT)
        else:
            diff, latency, runs = _ort_check(
                path, inputs, reference, repeats=repeats, threads=n_threads
            )
            checked = True
            if diff > atol:
                logger.warning("ONNX output differs from PyTorch by %.3g (> atol %.3g)", diff, atol)
    return OnnxReport(
        path=str(path),
        exporter=exporter,
        size_bytes=os.path.getsize(path),
        opset=opset_used,
        checked=checked,
        max_abs_diff=diff,
        matches=None if diff is None else diff <= atol,
        ort_latency_ms=latency,
        ort_runs=runs,
        ort_threads=n_threads if checked else None,
        fallback=fallback,
    )


def _matches(model: nn.Module, other: Any, inputs: tuple[torch.Tensor, ...], atol: float) -> bool:
    diff = max_abs_diff(_torch_outputs(model, inputs), _torch_outputs(other, inputs))
    if diff > atol:
        logger.warning("%s output differs by %.3g (> atol %.3g)", type(model).__name__, diff, atol)
    return diff <= atol


def check_torch_export(
    model: nn.Module, example_inputs: ExampleInputs, *, atol: float = 1e-5
) -> bool:
    """True if ``torch.export.export`` succeeds (eval mode) and the exported program's outputs
    match the model's within ``atol``. The reason for a False is logged as a warning."""
    inputs = to_device(as_input_tuple(example_inputs), model_device(model))
    with eval_mode(model):
        try:
            program = torch.export.export(model, inputs)
        except Exception as err:  # any failure means "not exportable"
            logger.warning("torch.export failed for %s: %s", type(model).__name__, err)
            return False
        return _matches(model, program.module(), inputs, atol)


def check_torchscript(
    model: nn.Module, example_inputs: ExampleInputs, *, atol: float = 1e-5
) -> bool:
    """True if the model compiles to TorchScript (``torch.jit.trace``, else ``torch.jit.script``)
    in eval mode and the compiled outputs match within ``atol``. Reasons are logged."""
    inputs = to_device(as_input_tuple(example_inputs), model_device(model))
    with eval_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation and tracer warnings
        for name, compile_fn in (
            ("trace", lambda: torch.jit.trace(model, inputs, check_trace=False)),
            ("script", lambda: torch.jit.script(model)),
        ):
            try:
                compiled = compile_fn()
            except Exception as err:  # try the next TorchScript frontend
                logger.warning("torch.jit.%s failed for %s: %s", name, type(model).__name__, err)
                continue
            return _matches(model, compiled, inputs, atol)
    return False
