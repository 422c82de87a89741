"""Whole workflows built from the library's blocks: train, prune, evaluate, the demo.

Each ``filterprune`` subcommand parses its flags and calls one of these; a Python user calls the
same functions with the same defaults.
"""

from .data import Data, load_data
from .demo import DemoConfig, run_demo
from .errors import RecipeError
from .eval import compare_saved, evaluate_saved
from .models import load_model, model_factory, widths_plan
from .prune import prune_saved, write_channels
from .train import Optimizer, TrainResult, train_baseline

__all__ = [
    "Data",
    "DemoConfig",
    "Optimizer",
    "RecipeError",
    "TrainResult",
    "compare_saved",
    "evaluate_saved",
    "load_data",
    "load_model",
    "model_factory",
    "prune_saved",
    "run_demo",
    "train_baseline",
    "widths_plan",
    "write_channels",
]
