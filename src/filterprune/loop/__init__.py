"""The iterative pruning loop and its configuration.

Checkpoints, run folders and loading live in :mod:`filterprune.store`; ``load``, ``save``,
``RunDir``, ``CheckpointError``, the channel-list and width helpers (:mod:`filterprune.store.widths`)
stay importable from here.

>>> from filterprune.loop import PruneConfig, run_pruning
>>> config = PruneConfig(criterion="l1", amount=0.1, finetune=200, max_iterations=5)
>>> config.removal.amount, config.finetuning.per_iteration  # the same settings, in sections
(0.1, 200)
>>> result = run_pruning(model, example, config=config, finetune=ft, evaluate=ev,
...                      run_dir="runs/vgg")          # doctest: +SKIP
>>> pruned = load("runs/vgg", lambda: create_model("vgg16_bn"))  # doctest: +SKIP
"""

from ..errors import CheckpointError
from ..report.run_report import RunReport, run_tables, write_run_report
from ..store.channels import read_channel_txt, read_spec, write_channel_txt
from ..store.load import load, load_state_dict_strict, resolve_checkpoint, save
from ..store.rundir import RunDir
from ..store.widths import (
    channel_layers,
    channel_list,
    channel_widths,
    plan_from_widths,
    unet_channel_list,
    unet_conv_names,
    unet_from_channels,
    unet_widths,
)
from .callbacks import TaskCallbacks, task_callbacks
from .config import (
    DEFAULT_FINAL_FINETUNE,
    DEFAULT_FINETUNE,
    DEFAULT_RANKING_BATCHES,
    RECIPE,
    Budget,
    ConfigError,
    Finetuning,
    PruneConfig,
    Removal,
    Stopping,
    Target,
)
from .layers import channel_groups, ignored_layers, layer_widths, producing_layers
from .result import RunResult
from .run import PruningLoop, run_pruning
from .state import LoopState, seed_everything
from .stop import STOP_REASONS

__all__ = [
    "DEFAULT_FINAL_FINETUNE",
    "DEFAULT_FINETUNE",
    "DEFAULT_RANKING_BATCHES",
    "RECIPE",
    "STOP_REASONS",
    "Budget",
    "CheckpointError",
    "ConfigError",
    "Finetuning",
    "PruneConfig",
    "PruningLoop",
    "Removal",
    "RunDir",
    "RunReport",
    "RunResult",
    "LoopState",
    "Stopping",
    "Target",
    "TaskCallbacks",
    "channel_groups",
    "channel_layers",
    "channel_list",
    "channel_widths",
    "ignored_layers",
    "layer_widths",
    "load",
    "load_state_dict_strict",
    "plan_from_widths",
    "producing_layers",
    "read_channel_txt",
    "read_spec",
    "resolve_checkpoint",
    "run_pruning",
    "run_tables",
    "save",
    "seed_everything",
    "task_callbacks",
    "unet_channel_list",
    "unet_conv_names",
    "unet_from_channels",
    "unet_widths",
    "write_channel_txt",
    "write_run_report",
]
