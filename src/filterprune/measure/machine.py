"""What machine a measurement ran on: CPU model, cores, threads, load, torch and Python versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

__all__ = ["cpu_model", "machine_info"]


def cpu_model() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine and its load, for run logs and benchmarks.

    Keys: ``cpu`` (model name), ``cpu_count`` (logical cores), ``cpus_usable`` (in this
    process's affinity mask, ``None`` where unknown), ``torch_threads`` (intra-op threads now),
    ``loadavg`` (1, 5 and 15 minute load averages, ``None`` where unknown), ``torch``,
    ``python``, ``platform`` and, where CUDA is available, ``cuda_device``.
    """
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(affinity) if affinity is not None else None,
        "torch_threads": torch.get_num_threads(),
        "loadavg": load,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info
