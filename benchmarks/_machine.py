"""The machine, software and checkout a benchmark ran on: one ``machine_info`` for every script.

Benchmarks import it as ``from _machine import machine_info`` (they run as scripts from
``benchmarks/``, which Python puts first on ``sys.path``).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    """CPU, thread counts, versions, the commit measured and the load when the run started.

    Call it at the start of a run (the commit that is measured). ``settings`` (e.g.
    ``threads=2``) are added as they are.
    """
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "torch_pruning": package_version("torch-pruning"),
        "scikit_learn": package_version("scikit-learn"),
        "filterprune": package_version("filterprune"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **settings,
    }
