"""One checkpoint folder: weights, plans, metrics and scores, written whole and recognised again.

A checkpoint folder (see :mod:`filterprune.store` for where they sit in a run folder)::

    weights.safetensors   state_dict, safetensors (no pickle)
    plan.json             composed plan from the original architecture (Plan.then)
    step_plan.json        (iterations) this iteration's plan, in the previous model's numbering
    metrics.json          (iterations) the iteration's row; (train) steps and metrics
    scores.json           (iterations) importance scores it ranked with (group -> list)
    model.json            (train) how to rebuild the original model, see store.model_json
    manifest.json         written by filterprune: the files above that this folder holds

The folder is written under a hidden temporary name and renamed into place when complete. An
existing folder is only replaced when its ``manifest.json`` says filterprune wrote it and it holds
nothing else; any other folder is left untouched and the write is refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, StorageError
from ..plan import Plan, PlanError
from .files import (
    _replace,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    exchange,
    fsync_dir,
    make_temp_dir,
    read_json,
    read_text,
    remove_tree,
)

__all__ = [
    "MANIFEST",
    "PLAN",
    "WEIGHTS",
    "CheckpointError",
    "is_own_checkpoint",
    "read_plan",
    "read_scores",
    "write_checkpoint_dir",
]

WEIGHTS = "weights.safetensors"
PLAN = "plan.json"
STEP_PLAN = "step_plan.json"
METRICS = "metrics.json"
SCORES = "scores.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def foreign_entry(path: Path) -> str | None:
    """Why ``path`` is not a checkpoint folder filterprune wrote (``None``: it is one)."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return f"it has no {MANIFEST}"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        listed = set(data["files"]) | {MANIFEST}
        if data.get("writer") != "filterprune":
            return f"its {MANIFEST} was not written by filterprune"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MANIFEST} is not one filterprune wrote"
    for entry in sorted(path.iterdir()):
        if entry.name not in listed:
            return f"it holds {entry.name!r}, which filterprune did not write there"
    return None


def is_own_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint folder filterprune wrote and holds nothing else."""
    path = Path(path)
    return path.is_dir() and foreign_entry(path) is None


def _check_replaceable(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return
    why = foreign_entry(path) if path.is_dir() and not path.is_symlink() else "it is not a folder"
    if why is not None:
        raise CheckpointError(
            f"{str(path)!r} exists and is not a checkpoint folder filterprune wrote ({why}); it "
            "is left untouched: choose a new or empty folder"
        )


def write_checkpoint_dir(
    path: str | Path,
    *,
    weights: bytes,
    plan: Plan,
    step_plan: Plan | None = None,
    metrics: Mapping[str, Any] | None = None,
    scores: Mapping[str, torch.Tensor] | None = None,
    extra_json: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint folder atomically (temp folder, then rename over ``path``).

    ``scores`` (group name -> 1-D tensor) go to ``scores.json`` as lists of floats, a
    non-finite score as ``null``; ``extra_json`` maps more file names to JSON content (e.g.
    ``model.json``). An existing ``path`` is replaced only if filterprune wrote it (see the
    module docstring); callers replace only folders no ``state.json`` points to.
    """
    path = Path(path)
    _check_replaceable(path)
    tmp = make_temp_dir(path)
    try:
        files = {WEIGHTS: weights, PLAN: plan.to_json() + "\n"}
        if step_plan is not None:
            files[STEP_PLAN] = step_plan.to_json() + "\n"
        if metrics is not None:
            files[METRICS] = json.dumps(dict(metrics), indent=1) + "\n"
        if scores is not None:
            files[SCORES] = _scores_json(scores)
        for name, content in (extra_json or {}).items():
            files[name] = json.dumps(content, indent=1) + "\n"
        for name, content in files.items():
            if isinstance(content, bytes):
                atomic_write_bytes(tmp / name, content)
            else:
                atomic_write_text(tmp / name, content)
        manifest = {"format": MANIFEST_FORMAT, "writer": "filterprune", "files": sorted(files)}
        atomic_write_json(tmp / MANIFEST, manifest)
        _check_replaceable(path)  # again: the folder may have changed while we wrote
        try:
            if path.exists() and exchange(tmp, path, path.name):
                remove_tree(tmp)  # now the old folder
            elif path.exists():  # no atomic exchange here: move the old one aside first
                trash = path.parent / f".{path.name}.{tmp.name.split('.')[-2]}.old"
                _replace(path, trash, f"{path.name} (aside)")
                _replace(tmp, path, path.name)
                remove_tree(trash)
            else:
                _replace(tmp, path, path.name)
        except OSError as exc:
            raise StorageError.wrap(exc, path, "writing") from None
    except BaseException:
        if tmp.exists():
            remove_tree(tmp)
        raise
    fsync_dir(path.parent)
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
    ok = isinstance(data, dict) and all(
        isinstance(v, list)
        and all(x is None or (isinstance(x, int | float) and not isinstance(x, bool)) for x in v)
        for v in data.values()
    )
    if not ok:
        raise CheckpointError(
            f"importance scores {str(path)!r}: expected an object group -> list of numbers (or "
            "null); delete the file (the scores are only used by the report)"
        )
    return {k: [math.nan if v is None else float(v) for v in vs] for k, vs in data.items()}


def read_plan(path: str | Path) -> Plan:
    """The plan of a ``plan.json``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"plan file {str(path)!r} does not exist")
    try:
        return Plan.from_json(read_text(path, what="plan file"), source=str(path))
    except PlanError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a plan of the wrong shape
        raise CheckpointError(
            f"plan file {str(path)!r} is not a filterprune plan ({type(exc).__name__}: {exc}); "
            "pass the plan.json written beside the weights"
        ) from None
