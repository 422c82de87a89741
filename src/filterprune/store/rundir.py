"""Reading and writing one run folder (the layout is in :mod:`filterprune.store`).

Crash safety: a checkpoint is written whole under a hidden name and renamed into place; a
checkpoint that ``state.json`` points to is never replaced: a new final model goes to a new
name (``final``, ``final_2``, ``final_3``, ...), ``state.json`` is switched to it atomically, and
only then is the previous one removed. Whatever a killed run left behind (hidden temporaries,
a checkpoint no state points to) is removed or overwritten by the next write of the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..plan import Plan
from .checkpoint import (
    METRICS,
    SCORES,
    WEIGHTS,
    is_own_checkpoint,
    read_scores,
    write_checkpoint_dir,
)
from .files import atomic_write_text, read_json, read_text, remove_leftovers, remove_tree

__all__ = ["STATE_FORMAT", "RunDir", "iteration_of", "row_key"]

STATE_FORMAT = 1
_ITERATION = re.compile(r"iter_(\d{3,})")
_FINAL = re.compile(r"final(?:_(\d+))?")


def iteration_of(name: str, *, source: str = "checkpoint name") -> int:
    """The iteration number of a checkpoint name ``iter_NNN``; other names are an error."""
    match = _ITERATION.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise CheckpointError(
            f"{source}: {name!r} is not an iteration checkpoint name (iter_000, iter_001, ...); "
            "the run folder was edited by hand: restore its state.json or start a new run"
        )
    return int(match[1])


def row_key(name: str) -> int | str:
    """The ``iteration`` field of checkpoint ``name``'s row: the number, or ``"final"``."""
    return "final" if _FINAL.fullmatch(name) else iteration_of(name)


def _is_checkpoint_name(name: Any) -> bool:
    return isinstance(name, str) and bool(_ITERATION.fullmatch(name) or _FINAL.fullmatch(name))


def _int(minimum: int) -> Any:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


# field -> (check, what it must be)
STATE_FIELDS = {
    "last_completed": (_int(0), "an integer >= 0"),
    "current": (lambda v: _is_checkpoint_name(v) and v.startswith("iter_"), "'iter_NNN'"),
    "final": (_is_checkpoint_name, "a checkpoint name ('iter_NNN' or 'final')"),
    "best_iteration": (_int(0), "an integer >= 0"),
    "removed_total": (_int(0), "an integer >= 0"),
    "steps_done": (_int(0), "an integer >= 0"),
    "base_total": (_int(0), "an integer >= 0"),
    "finished": (lambda v: isinstance(v, bool), "true or false"),
    "stop_reason": (lambda v: v is None or isinstance(v, str), "null or a stop reason"),
}


class RunDir:
    """Reads and writes one run folder (see :mod:`filterprune.store` for the layout)."""

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

    def started(self) -> bool:
        """Whether a run began writing here, even if no state.json exists yet."""
        names = ("config.json", "model.json", self.iteration_name(0))
        return any((self.path / name).exists() for name in names)

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
        """Write checkpoint ``name``; it must not be one the saved state points to."""
        if self.exists() and name in self._referenced(self.read_state()):
            raise CheckpointError(  # an internal rule: state.json would point at a half-swap
                f"checkpoint {name!r} of {str(self.path)!r} is in use by state.json; write the "
                "new one under another name (RunDir.next_final_name)"
            )
        return write_checkpoint_dir(
            self.checkpoint(name),
            weights=weights,
            plan=plan,
            step_plan=step_plan,
            metrics=row,
            scores=scores,
        )

    def next_final_name(self) -> str:
        """A name for a new final checkpoint that the saved state does not point to."""
        if not self.exists():
            return "final"
        match = _FINAL.fullmatch(self.read_state()["final"])
        if match is None:
            return "final"
        return f"final_{int(match[1] or 1) + 1}"

    def write_log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(dict(row)) + "\n" for row in rows)
        atomic_write_text(self.log_path, text)

    def write_state(self, state: Mapping[str, Any]) -> None:
        """Switch ``state.json`` atomically, then remove what no state points to any more."""
        from .files import atomic_write_json

        atomic_write_json(self.state_path, {"format": STATE_FORMAT, **state})
        self.tidy(state)

    def tidy(self, state: Mapping[str, Any]) -> None:
        """Remove what a killed run left: hidden temporaries, and final models (written by
        filterprune) that ``state`` does not point to. Only while no one else writes here."""
        remove_leftovers(self.path)
        keep = self._referenced(state)
        for entry in sorted(self.path.iterdir()):
            if _FINAL.fullmatch(entry.name) and entry.name not in keep and is_own_checkpoint(entry):
                remove_tree(entry)

    @staticmethod
    def _referenced(state: Mapping[str, Any]) -> set[str]:
        return {state.get("final"), state.get("current")} - {None}

    # ----- reading ---------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        """``state.json``, every field checked; errors name the file, the field and the fix."""
        where = str(self.state_path)
        state = read_json(self.state_path, what="run state")
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise CheckpointError(
                f"run state {where!r} has an unknown format (field 'format' must be "
                f"{STATE_FORMAT}); it was not written by this version of filterprune: start a "
                "new run folder"
            )
        for key, (check, want) in STATE_FIELDS.items():
            if key not in state:
                raise CheckpointError(
                    f"run state {where!r}: field '{key}' is missing; the file was edited or cut "
                    "short: restore it or start a new run folder"
                )
            if not check(state[key]):
                raise CheckpointError(
                    f"run state {where!r}: field '{key}' must be {want}, got {state[key]!r:.60}; "
                    "restore the file or start a new run folder"
                )
        for key in ("current", "final"):
            folder = self.checkpoint(state[key])
            if not (folder / WEIGHTS).is_file():
                raise CheckpointError(
                    f"run state {where!r}: field '{key}' names checkpoint {state[key]!r}, but "
                    f"{str(folder / WEIGHTS)!r} does not exist; restore that folder or start a "
                    "new run folder"
                )
        return state

    def read_config_json(self) -> str:
        if not self.config_path.is_file():
            raise CheckpointError(f"run config {str(self.config_path)!r} does not exist")
        return read_text(self.config_path, what="run config")

    def read_row(self, name: str) -> dict[str, Any]:
        row = read_json(self.checkpoint(name) / METRICS, what="iteration metrics")
        if not isinstance(row, dict) or "iteration" not in row:
            raise CheckpointError(
                f"iteration metrics {str(self.checkpoint(name) / METRICS)!r} must be an object "
                "with an 'iteration' field; the checkpoint was edited: restore it"
            )
        return row

    def read_scores(self, name: str) -> dict[str, list[float]] | None:
        """Importance scores of checkpoint ``name`` (``None`` if it ranked nothing)."""
        path = self.checkpoint(name) / SCORES
        return read_scores(path) if path.is_file() else None

    def read_rows(self) -> list[dict[str, Any]]:
        """Rows of log.jsonl (empty if there is no log); each must be an object with the
        fields ``iteration`` (an integer or ``"final"``) and ``accepted`` (true/false)."""
        if not self.log_path.is_file():
            return []
        rows = []
        text = read_text(self.log_path, what="run log")
        where = str(self.log_path)
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CheckpointError(
                    f"run log {where!r} line {number} is not valid JSON ({exc})"
                ) from None
            problem = _row_problem(row)
            if problem:
                raise CheckpointError(
                    f"run log {where!r} line {number}: {problem}; the log was edited: restore it "
                    "or start a new run folder"
                )
            rows.append(row)
        return rows

    def final_checkpoint(self) -> Path:
        """The checkpoint folder holding the run's result (final finetune, or last good)."""
        return self.checkpoint(self.read_state()["final"])


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"expected an object, got {type(row).__name__}"
    iteration = row.get("iteration")
    if not (iteration == "final" or _int(0)(iteration)):
        return f"field 'iteration' must be an integer >= 0 or 'final', got {iteration!r:.40}"
    if not isinstance(row.get("accepted", True), bool):
        return f"field 'accepted' must be true or false, got {row['accepted']!r:.40}"
    for key in ("metrics", "channels"):
        if key in row and not isinstance(row[key], dict):
            return f"field '{key}' must be an object, got {type(row[key]).__name__}"
    return None
