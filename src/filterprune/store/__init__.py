"""Everything filterprune keeps on disk: checkpoints, run folders, model.json, channels.txt, plans.

Run folder (``filterprune prune --run-dir``, :func:`filterprune.run_pruning` ``run_dir=``)::

    RUN/model.json          how to rebuild the original model and its data (CLI; model_json)
    RUN/config.json         the PruneConfig of the run
    RUN/state.json          last completed iteration, counters, stop reason, current and final
                            checkpoint names: the file a resume and a load start from (rundir)
    RUN/log.jsonl           one JSON object per recorded iteration (row 0: the starting model)
    RUN/iter_000/           the starting model, a checkpoint folder (checkpoint):
        weights.safetensors     state_dict, safetensors (no pickle)
        plan.json               composed plan from the original architecture (Plan.then)
        step_plan.json          this iteration's plan, in the previous iteration's numbering
        metrics.json            the iteration's row (metrics, params, MACs, size, ...)
        scores.json             importance scores the iteration ranked with (group -> list)
        manifest.json           the files filterprune wrote into this folder
    RUN/iter_001/ ...       one per iteration, accepted or rejected (the row says which)
    RUN/final/              after the optional final finetune; extending a finished run writes
                            final_2/, final_3/, ... and removes the previous one afterwards
    RUN/channels.txt        (U-Nets) output channels of each conv, one per line (channels)
    RUN/report/             tables, plots, summary (filterprune report)
    RUN/.lock               the writer's lock (lock): held by the one process writing the
                            folder, released by the OS when it ends; it names that process

Baseline folder (``filterprune train --out``, :func:`filterprune.save`): one checkpoint folder
with ``weights.safetensors``, ``plan.json``, ``model.json``, ``metrics.json`` and
``manifest.json``.

Rules every writer here follows:

* Atomic: each file is written to a hidden temporary in its folder, fsynced and renamed into
  place; a checkpoint folder is written whole under a hidden name and renamed. ``state.json``
  only ever points to complete checkpoints, and a checkpoint it points to is never replaced.
  A SIGKILL at any moment leaves a folder that loads and resumes to the same result.
* Only its own: an existing folder is replaced only when its ``manifest.json`` says
  filterprune wrote it and it holds nothing else; everything else is refused, untouched.
* Shared: files and folders get the user's umask.
* Untrusted on read: every field of every file is checked; an error names the file, the field
  and the fix. No code named in a file is imported (see :mod:`filterprune.store.model_json`);
  weights are never unpickled and are checked for NaN/inf.

Modules: :mod:`~filterprune.store.files` (atomic writes, checked reads),
:mod:`~filterprune.store.weights` (safetensors bytes, reading weights),
:mod:`~filterprune.store.checkpoint` (one checkpoint folder), :mod:`~filterprune.store.rundir`
(a run folder), :mod:`~filterprune.store.load` (:func:`save` / :func:`load` a pruned model),
:mod:`~filterprune.store.model_json`, :mod:`~filterprune.store.channels` (channel lists),
:mod:`~filterprune.store.widths` (a plan from a width spec or a channel list).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import CheckpointError

# name -> submodule; loaded on first use so that importing one part stays light
_EXPORTS = {
    "atomic_write_bytes": "files",
    "atomic_write_json": "files",
    "atomic_write_text": "files",
    "read_json": "files",
    "read_text": "files",
    "read_weights": "weights",
    "savable_state_dict": "weights",
    "state_dict_bytes": "weights",
    "is_own_checkpoint": "checkpoint",
    "read_plan": "checkpoint",
    "write_checkpoint_dir": "checkpoint",
    "RunDir": "rundir",
    "load": "load",
    "load_state_dict_strict": "load",
    "resolve_checkpoint": "load",
    "save": "load",
    "MODEL_JSON": "model_json",
    "find_model_json": "model_json",
    "read_model_json": "model_json",
    "write_model_json": "model_json",
    "read_channel_txt": "channels",
    "read_spec": "channels",
    "write_channel_txt": "channels",
    "channel_layers": "widths",
    "channel_list": "widths",
    "channel_widths": "widths",
    "plan_from_widths": "widths",
    "unet_channel_list": "widths",
    "unet_conv_names": "widths",
    "unet_from_channels": "widths",
    "unet_widths": "widths",
}

__all__ = ["CheckpointError", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'filterprune.store' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
