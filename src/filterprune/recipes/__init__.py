"""Whole workflows built from the library's blocks (the CLI calls these)."""

from .demo import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
