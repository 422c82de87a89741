"""The machine, software and checkout a benchmark ran on: one ``machine_info`` for every script.

It is the library's :func:`filterprune.measure.machine_info` (CPU, cores, threads, load, torch,
Python, platform: what every pruning run logs) plus what a benchmark result also records: the
interop threads, the versions of the packages compared, and the commit measured. Benchmarks
import it as ``from _machine import machine_info`` (they run as scripts from ``benchmarks/``,
which Python puts first on ``sys.path``).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

import torch

from filterprune.measure import machine_info as library_machine_info

ROOT = Path(__file__).resolve().parents[1]


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or ``None``."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git(*args: str) -> str | None:
    """Output of a read-only git command in this checkout, or ``None``."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def machine_info(**settings: Any) -> dict[str, Any]:
    """:func:`filterprune.measure.machine_info`, versions and the commit measured.

    Call it at the start of a run (the commit that is measured; ``loadavg`` is the load then).
    ``settings`` (e.g. ``threads=2``) are added as they are.
    """
    return {
        **library_machine_info(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_pruning": package_version("torch-pruning"),
        "scikit_learn": package_version("scikit-learn"),
        "filterprune": package_version("filterprune"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
        **settings,
    }
