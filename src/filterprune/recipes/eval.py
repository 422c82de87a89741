"""Evaluate a saved model: task metrics, parameters, MACs, checkpoint size and latency.

>>> from filterprune.recipes import evaluate_saved
>>> evaluate_saved("runs/vgg-pruned")["metrics"]                      # doctest: +SKIP
{'accuracy': 0.97}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import Data, default_model_args, load_data
from .models import load_model, model_factory, saved_model

__all__ = ["evaluate_saved"]


def evaluate_saved(
    load: str | Path,
    *,
    data: Data | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    task: str | None = None,
    channel_txt: str | Path | None = None,
    spec: str | Path | None = None,
    latency: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Metrics on the validation data, parameters, MACs (one input) and size of a saved model.

    Args:
        load: A run folder (its final model), a checkpoint folder or a ``.safetensors`` file.
        data: From :func:`load_data`; default: model.json's data settings and split.
        model, model_args, task: Override model.json's (needed when there is none).
        channel_txt, spec: The checkpoint's widths when it has no plan.json.
        latency: Also time a forward pass (median, milliseconds).
        device: Where to evaluate.

    Returns:
        ``{"metrics": {...}, "params": int, "macs": int, "size_mb": float}`` (and
        ``"latency_ms"``).
    """
    from .. import measure

    info = saved_model(load, model=model, model_args=model_args, task=task)
    if data is None:
        data = load_data(info["task"], saved=info.get("data"))
    kwargs = default_model_args(info["model"], info["task"], data, info["model_args"])
    factory = model_factory(info["model"], kwargs)
    net, _ = load_model(
        Path(load), factory, data.example, channel_txt=channel_txt, spec=spec, device=device
    )
    counts = measure.count(net, data.example)
    out: dict[str, Any] = {
        "metrics": data.task.evaluate(net, data.val_loader, device=device),
        "params": counts.params,
        "macs": counts.macs,
        "size_mb": measure.checkpoint_size_bytes(net) / 1e6,
    }
    if latency:
        out["latency_ms"] = measure.measure_latency(net, data.example)[0].median_ms
    return out
