"""The run directory: checkpoints per iteration, a machine-readable log and the resume state.

Layout::

    run_dir/config.json          the PruneConfig of the run
    run_dir/log.jsonl            one JSON object per finished iteration (row 0: the original)
    run_dir/state.json           last completed iteration, counters, stop reason, final checkpoint
    run_dir/iter_000/            the starting model
        weights.safetensors      state_dict, safetensors (no pickle)
        plan.json                composed plan from the original architecture (Plan.then)
        step_plan.json           this iteration's plan, in the previous iteration's numbering
        metrics.json             the iteration's row (metrics, params, MACs, size, ...)
        scores.json              importance scores the iteration ranked with (group -> list)
    run_dir/iter_001/ ...
    run_dir/final/               after the optional final finetune

Every file is written to a temporary name in the same folder, flushed, fsynced and moved into
place with ``os.replace``; an iteration folder is written under a temporary name and renamed
when complete, so a crash leaves either the old state or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_leftovers
from .._atomic import fsync_dir as _fsync_dir
from ..plan import Plan

__all__ = [
    "CheckpointError",
    "RunDir",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_json",
    "state_dict_bytes",
]

STATE_FORMAT = 1
WEIGHTS = "weights.safetensors"
PLAN = "plan.json"
STEP_PLAN = "step_plan.json"
METRICS = "metrics.json"
SCORES = "scores.json"


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, incomplete or does not fit the model."""


def read_text(path: str | Path, *, what: str = "file") -> str:
    """The UTF-8 text of ``path``; a file that is not UTF-8 text is an error that names it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {exc.start}: {exc.reason}); pass the "
            "text file it should be, not a binary one"
        ) from None


def read_json(path: str | Path, *, what: str = "file") -> Any:
    """Read a JSON file; errors name the file and the problem."""
    path = Path(path)
    try:
        text = read_text(path, what=what)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {str(path)!r} does not exist") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{what} {str(path)!r} is not valid JSON ({exc})") from None


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as err:
        raise ImportError(
            "saving and loading checkpoints needs safetensors: pip install filterprune[report]"
        ) from err
    return st


def savable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` as contiguous CPU tensors sharing no storage (safetensors needs it)."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach()
        key = (str(tensor.device), tensor.untyped_storage().data_ptr())
        if key in seen or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        else:
            seen.add(key)
        out[name] = tensor.to("cpu")
    return out


def state_dict_bytes(model: nn.Module) -> bytes:
    """The model's weights and buffers serialised as a safetensors file (its exact bytes)."""
    return _safetensors().save(savable_state_dict(model))


TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file, or of a ``torch.save``-d state dict (``.pt``/``.pth``), on CPU.

    Nothing in the file is executed: state dicts are read with ``torch.load(weights_only=True)``,
    which refuses pickled objects other than tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    if path.suffix.lower() in TORCH_SUFFIXES:
        return _read_state_dict(path)
    try:
        return _safetensors().load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(
            f"weights file {str(path)!r} is not a readable safetensors file ({exc}); pass a "
            "weights.safetensors written by filterprune, or a state dict saved with "
            "torch.save(model.state_dict(), 'model.pt')"
        ) from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"weights file {str(path)!r} holds pickled Python objects, not only tensors (e.g. a "
            "whole model saved with torch.save(model)); filterprune does not unpickle them, "
            "because unpickling can run any code the file contains. Re-save the weights where "
            "the model is trusted: torch.save(model.state_dict(), 'model.pt')"
        ) from None
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(
            f"weights file {str(path)!r} cannot be read by torch.load ({exc}); save it with "
            "torch.save(model.state_dict(), 'model.pt')"
        ) from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]  # e.g. {"state_dict": ..., "epoch": ...}
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()
    ):
        raise CheckpointError(
            f"weights file {str(path)!r} is not a state dict (parameter name -> tensor); save "
            "it with torch.save(model.state_dict(), 'model.pt')"
        )
    return dict(data)


def write_checkpoint_dir(
    path: str | Path,
    *,
    weights: bytes,
    plan: Plan,
    step_plan: Plan | None = None,
    metrics: Mapping[str, Any] | None = None,
    scores: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a complete checkpoint folder atomically (temp folder, then rename over ``path``).

    ``scores`` (group name -> 1-D tensor) go to ``scores.json`` as lists of floats, a
    non-finite score as ``null``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        atomic_write_bytes(tmp / WEIGHTS, weights)
        atomic_write_text(tmp / PLAN, plan.to_json() + "\n")
        if step_plan is not None:
            atomic_write_text(tmp / STEP_PLAN, step_plan.to_json() + "\n")
        if metrics is not None:
            atomic_write_json(tmp / METRICS, dict(metrics))
        if scores is not None:
            atomic_write_text(tmp / SCORES, _scores_json(scores))
        if path.exists() and not (path / WEIGHTS).is_file() and not _empty_dir(path):
            raise CheckpointError(
                f"{str(path)!r} exists and is not a filterprune checkpoint folder (no {WEIGHTS}); "
                "it is left untouched: choose a new or empty folder"
            )
        if path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, trash / path.name)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(path.parent)
    return path


def _scores_json(scores: Mapping[str, torch.Tensor]) -> str:
    out = {}
    for name, values in scores.items():
        flat = torch.as_tensor(values).detach().to("cpu", torch.float64).flatten().tolist()
        out[str(name)] = [v if math.isfinite(v) else None for v in flat]
    return json.dumps(out) + "\n"


def read_scores(path: str | Path) -> dict[str, list[float]]:
    """Scores of a ``scores.json`` (``null`` -> NaN)."""
    data = read_json(path, what="importance scores")
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise CheckpointError(f"importance scores {str(path)!r}: expected {{group: [scores]}}")
    return {k: [math.nan if v is None else float(v) for v in vs] for k, vs in data.items()}


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def read_plan(path: str | Path) -> Plan:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"plan file {str(path)!r} does not exist")
    return Plan.from_json(read_text(path, what="plan file"), source=str(path))


class RunDir:
    """Reads and writes one run directory (see the module docstring for the layout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def state_path(self) -> Path:
        return self.path / "state.json"

    @property
    def log_path(self) -> Path:
        return self.path / "log.jsonl"

    @staticmethod
    def iteration_name(iteration: int) -> str:
        return f"iter_{iteration:03d}"

    def checkpoint(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        return self.state_path.is_file()

    # ----- writing ---------------------------------------------------------------------------
    def write_config(self, config_json: str) -> None:
        atomic_write_text(self.config_path, config_json + "\n")

    def write_checkpoint(
        self,
        name: str,
        *,
        weights: bytes,
        plan: Plan,
        step_plan: Plan,
        row: Mapping[str, Any],
        scores: Mapping[str, torch.Tensor] | None = None,
    ) -> Path:
        return write_checkpoint_dir(
            self.checkpoint(name),
            weights=weights,
            plan=plan,
            step_plan=step_plan,
            metrics=row,
            scores=scores,
        )

    def write_log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(dict(row)) + "\n" for row in rows)
        atomic_write_text(self.log_path, text)

    def write_state(self, state: Mapping[str, Any]) -> None:
        atomic_write_json(self.state_path, {"format": STATE_FORMAT, **state})
        remove_leftovers(self.path)  # temporaries of writes a killed run did not finish

    # ----- reading ---------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        state = read_json(self.state_path, what="run state")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CheckpointError(
                f"run state {str(self.state_path)!r} has an unknown format; it was not written "
                "by this version of filterprune"
            )
        return state

    def read_config_json(self) -> str:
        if not self.config_path.is_file():
            raise CheckpointError(f"run config {str(self.config_path)!r} does not exist")
        return read_text(self.config_path, what="run config")

    def read_row(self, name: str) -> dict[str, Any]:
        return read_json(self.checkpoint(name) / METRICS, what="iteration metrics")

    def read_scores(self, name: str) -> dict[str, list[float]] | None:
        """Importance scores of checkpoint ``name`` (``None`` if it ranked nothing)."""
        path = self.checkpoint(name) / SCORES
        return read_scores(path) if path.is_file() else None

    def read_rows(self) -> list[dict[str, Any]]:
        """Rows of log.jsonl (empty if there is no log)."""
        if not self.log_path.is_file():
            return []
        rows = []
        text = read_text(self.log_path, what="run log")
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise CheckpointError(
                        f"run log {str(self.log_path)!r} line {number} is not valid JSON ({exc})"
                    ) from None
        return rows

    def final_checkpoint(self) -> Path:
        """The checkpoint folder holding the run's result (final finetune, or last good)."""
        state = self.read_state()
        return self.checkpoint(state["final"])
