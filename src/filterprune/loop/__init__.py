"""The iterative pruning loop (its configuration lives in :mod:`filterprune.config`).

Checkpoints, run folders and loading live in :mod:`filterprune.store`, the run's tables in
:mod:`filterprune.report`; this face exports the loop's own names. The names it used to hand on
(``load``, ``save``, ``RunDir``, ``CheckpointError``, the channel-list and width helpers,
``write_run_report``, ...) still import from here, loaded from their home on first use.

>>> from filterprune import PruneConfig, run_pruning
>>> config = PruneConfig(criterion="l1", amount=0.1, finetune=200, max_iterations=5)
>>> config.removal.amount, config.finetuning.per_iteration  # the same settings, in sections
(0.1, 200)
>>> result = run_pruning(model, example, config=config, finetune=ft, evaluate=ev,
...                      run_dir="runs/vgg")          # doctest: +SKIP
>>> pruned = load("runs/vgg", lambda: create_model("vgg16_bn"))  # doctest: +SKIP
"""

import importlib
from typing import Any

from .callbacks import TaskCallbacks, task_callbacks
from .layers import channel_groups, ignored_layers, layer_widths, producing_layers
from .result import RunResult
from .run import PruningLoop, run_pruning
from .state import LoopState, seed_everything
from .stop import STOP_REASONS

__all__ = [
    "STOP_REASONS",
    "PruningLoop",
    "RunResult",
    "LoopState",
    "TaskCallbacks",
    "channel_groups",
    "ignored_layers",
    "layer_widths",
    "producing_layers",
    "run_pruning",
    "seed_everything",
    "task_callbacks",
]

# names that live elsewhere and were importable from here: loaded on first use
_MOVED = {
    **dict.fromkeys(
        ("DEFAULT_FINAL_FINETUNE", "DEFAULT_FINETUNE", "DEFAULT_RANKING_BATCHES", "RECIPE",
         "Budget", "ConfigError", "Finetuning", "PruneConfig", "Removal", "Stopping", "Target"),
        "filterprune.config",
    ),
    **dict.fromkeys(("CheckpointError",), "filterprune.errors"),
    **dict.fromkeys(("read_channel_txt", "read_spec", "write_channel_txt"), "filterprune.store.channels"),
    **dict.fromkeys(
        ("load", "load_state_dict_strict", "resolve_checkpoint", "save"), "filterprune.store.load"
    ),
    "RunDir": "filterprune.store.rundir",
    **dict.fromkeys(
        ("channel_layers", "channel_list", "channel_widths", "plan_from_widths",
         "unet_channel_list", "unet_conv_names", "unet_from_channels", "unet_widths"),
        "filterprune.store.widths",
    ),
    **dict.fromkeys(("RunReport", "run_tables", "write_run_report"), "filterprune.report.run_report"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})
