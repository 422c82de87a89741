"""Evaluate a saved model: task metrics, parameters, MACs, checkpoint size and latency.

>>> from filterprune.recipes import evaluate_saved
>>> evaluate_saved("runs/vgg-pruned")["metrics"]                      # doctest: +SKIP
{'accuracy': 0.97}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..store.model_json import find_model_json, read_model_json
from .data import Data, default_model_args, load_data
from .errors import RecipeError
from .models import check_fits_data, load_model, model_factory, saved_model

#: Where :func:`compare_saved` can time models.
RUNTIMES = ("eager", "onnxruntime")

__all__ = ["compare_descriptions", "compare_saved", "evaluate_saved"]


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
    trust_code: bool = False,
) -> dict[str, Any]:
    """Metrics on the validation data, parameters, MACs (one input) and size of a saved model.

    Args:
        load: A run folder (its final model), a checkpoint folder or a ``.safetensors`` file.
        data: From :func:`load_data`; default: model.json's data settings and split.
        model, model_args, task: Override model.json's (needed when there is none).
        channel_txt, spec: The checkpoint's widths when it has no plan.json.
        latency: Also time a forward pass (median, milliseconds; alone, so no speed-up: see
            :func:`compare_saved`).
        device: Where to evaluate.
        trust_code: Allow ``model`` to be ``module:function`` (importing the module runs its
            code; the CLI's ``--trust-model-code``). Never needed for built-in models.

    Returns:
        ``{"metrics": {...}, "params": int, "macs": int, "size_mb": float}`` (and
        ``"latency_ms"``).
    """
    info = saved_model(load, model=model, model_args=model_args, task=task, trust_code=trust_code)
    net, out, data = _evaluated(
        load, data, info, channel_txt=channel_txt, spec=spec, device=device,
        trust_code=trust_code,
    )  # fmt: skip
    if latency:
        from .. import measure

        out["latency_ms"] = measure.measure_latency(net, data.example)[0].median_ms
    return out


def _talking() -> bool:
    """Whether an evaluation pass shows progress: unless the ``filterprune`` logger was set above
    INFO (the command line's ``--quiet``), as the lines of a long pass are INFO-level news."""
    level = logging.getLogger("filterprune").level
    return level == logging.NOTSET or level <= logging.INFO


def _evaluated(
    load: str | Path,
    data: Data | None,
    info: dict[str, Any],
    *,
    channel_txt: str | Path | None,
    spec: str | Path | None,
    device: str,
    trust_code: bool = False,
) -> tuple[Any, dict[str, Any], Data]:
    """The rebuilt model (from ``info``, a :func:`saved_model` description), its
    metrics/params/MACs/size and the data it was evaluated on."""
    from .. import measure

    if data is None:
        data = load_data(info["task"], saved=info.get("data"))
    kwargs = default_model_args(info["model"], info["task"], data, info["model_args"])
    factory = model_factory(info["model"], kwargs, trust_code=trust_code)
    net, _ = load_model(
        Path(load), factory, data.example, channel_txt=channel_txt, spec=spec, device=device
    )
    check_fits_data(net, data, info["model"])
    counts = measure.count(net, data.example)
    out: dict[str, Any] = {
        "metrics": data.task.evaluate(net, data.val_loader, device=device, progress=_talking()),
        "params": counts.params,
        "macs": counts.macs,
        "size_mb": measure.checkpoint_size_bytes(net) / 1e6,
    }
    return net, out, data


def compare_saved(
    original: str | Path,
    load: str | Path,
    *,
    data: Data | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    task: str | None = None,
    channel_txt: str | Path | None = None,
    spec: str | Path | None = None,
    latency: bool = True,
    batch_sizes: tuple[int, ...] = (1,),
    threads: int | None = 1,
    rounds: int = 5,
    repeats: int = 10,
    device: str = "cpu",
    trust_code: bool = False,
    runtimes: tuple[str, ...] = ("eager",),
) -> dict[str, Any]:
    """A/B of two saved models: both evaluated on the same data, then timed side by side.

    Args:
        original: The reference (e.g. the baseline, or a run's ``iter_000``).
        load: The compared model (e.g. the pruned run folder).
        data: From :func:`load_data`; default: ``load``'s model.json data settings and split
            (``original``'s when ``load`` has none), used for both models.
        model, model_args, task: Override model.json's, for both models. Otherwise each model
            is built from its own model.json (see :func:`compare_descriptions`), so the two may
            be different architectures.
        channel_txt, spec: ``load``'s widths when its checkpoint has no plan.json.
        latency: Time both with :func:`filterprune.measure.compare_latency` (alternating
            rounds in this process, same threads and inputs).
        batch_sizes, threads, rounds, repeats: The timing settings (see ``compare_latency``).
        device: Where to evaluate and time.
        trust_code: Allow ``model`` to be ``module:function`` (see :func:`evaluate_saved`).
        runtimes: Where to time them: ``"eager"`` (PyTorch) and/or ``"onnxruntime"`` (both
            exported to ONNX, CPU sessions with ``threads`` intra-op threads; the ``onnx``
            extra), each in alternating rounds.

    Returns:
        ``{"original": {...}, "model": {...}}`` with each model's ``metrics``, ``params``,
        ``macs`` and ``size_mb``, and ``"latency"``: one
        :meth:`~filterprune.measure.LatencyComparison.to_dict` record per batch size (both
        latencies, the speed-up with its round range and flags); with ``"onnxruntime"`` in
        ``runtimes``, ``"onnxruntime_latency"`` likewise.
    """
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise ConfigError(f"runtimes: need some of {RUNTIMES}, got {list(runtimes)}")
    info_a, info_b = compare_descriptions(
        original, load, model=model, model_args=model_args, task=task, trust_code=trust_code
    )
    common = {"device": device, "trust_code": trust_code}
    net_b, out_b, data = _evaluated(
        load, data, info_b, channel_txt=channel_txt, spec=spec, **common
    )
    net_a, out_a, _ = _evaluated(original, data, info_a, channel_txt=None, spec=None, **common)
    result: dict[str, Any] = {"original": out_a, "model": out_b}
    if latency and "eager" in runtimes:
        from .. import measure

        compared = measure.compare_latency(
            net_a, net_b, data.example, batch_sizes=batch_sizes, rounds=rounds,
            repeats=repeats, threads=threads, device=device,
        )  # fmt: skip
        result["latency"] = [{**c.to_dict(), "runtime": "eager"} for c in compared]
        for record in result["latency"]:
            _add_floor(record, net_a, net_b, data.example, threads)
    if latency and "onnxruntime" in runtimes:
        from ..report.ort import compare_ort_latency

        result["onnxruntime_latency"] = compare_ort_latency(
            net_a.cpu(), net_b.cpu(), data.example, batch_sizes=batch_sizes,
            threads=threads or torch.get_num_threads(), rounds=rounds, repeats=repeats,
        )  # fmt: skip
        if "latency" in result:
            result["runtimes_disagree"] = runtimes_disagree(
                result["latency"], result["onnxruntime_latency"]
            )
    return result


def compare_descriptions(
    original: str | Path,
    load: str | Path,
    *,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    task: str | None = None,
    trust_code: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """How to rebuild each model of an A/B: ``(original's, load's)`` :func:`saved_model` infos.

    Each model is built from its own model.json (next to it, or its run folder's) with
    ``model``/``model_args``/``task`` on top; a model without one uses the other's (both
    without one: the arguments alone). Two models whose own descriptions name different tasks
    or input channel counts cannot be evaluated on the same data.

    Raises:
        RecipeError: The two descriptions differ in task or input channels, ``model`` differs
            from the model a description names, or nothing names the model or the task; the
            message names both models and what differs.
    """
    sides = {"original": Path(original), "model": Path(load)}
    own = {side: find_model_json(path) for side, path in sides.items()}
    flags = {"model": model, "model_args": model_args, "trust_code": trust_code}
    infos: dict[str, dict[str, Any]] = {}
    for side, path in sides.items():
        if own[side] is not None:
            if model is not None:
                named = read_model_json(own[side]).get("model")
                if named is not None and named != model:
                    raise RecipeError(
                        f"--model {model} applies to both models, but {own[side]} (of "
                        f"{path}) names the model {named!r} (field 'model'); leave --model out "
                        "so that each model is built from its own model.json, or compare two "
                        f"checkpoints of {model}"
                    )
            infos[side] = saved_model(path, require_task=False, **flags)
    if not infos:
        infos["model"] = saved_model(load, require_task=False, **flags)
    for side, other in (("original", "model"), ("model", "original")):
        if side not in infos:
            infos[side] = dict(infos[other])
    if own["original"] is not None and own["model"] is not None:
        _check_comparable(sides, own, infos)
    for info in infos.values():
        if task is not None:
            info["task"] = task
        if info.get("task") is None:
            raise RecipeError(
                f"--task is required (classify, segment or detect); no model.json of {original} or "
                f"{load} names it"
            )
    return infos["original"], infos["model"]


def _check_comparable(
    sides: dict[str, Path], own: dict[str, Path | None], infos: dict[str, dict[str, Any]]
) -> None:
    """Both models' own descriptions name the same task and input channel count."""
    a, b = infos["original"], infos["model"]
    what = None
    if a.get("task") and b.get("task") and a["task"] != b["task"]:
        what = f"task {a['task']!r} against {b['task']!r} (field 'task')"
    shape_a, shape_b = a.get("input_shape") or [], b.get("input_shape") or []
    if what is None and len(shape_a) > 1 and len(shape_b) > 1 and shape_a[1] != shape_b[1]:
        what = (
            f"{shape_a[1]}-channel inputs against {shape_b[1]}-channel inputs (field "
            f"'input_shape': {shape_a} against {shape_b})"
        )
    if what is not None:
        raise RecipeError(
            f"cannot compare --compare {sides['original']} with --load {sides['model']}: their "
            f"descriptions ({own['original']}, {own['model']}) name {what}; both models are "
            "evaluated on the same data, so compare two models of the same task and inputs "
            "(e.g. a baseline and a pruned run of it)"
        )


def _add_floor(
    record: dict[str, Any], original: Any, model: Any, example: Any, threads: int | None
) -> None:
    """On a CPU busy enough to flag a comparison ``preempted`` or ``noisy``, add what each
    model's fastest unpreempted block says (``floor_speedup``, ``floor_clean_blocks``): the
    figure the pruning loop decides on there (:func:`filterprune.measure.floor_speedup`)."""
    from .. import measure

    if not measure.busy(record.get("flags")) or record.get("device") != "cpu":
        return
    floor = measure.floor_speedup(
        original, model, example, batch_size=record["batch_size"], threads=threads
    )
    record.update(floor_speedup=floor.speedup, floor_clean_blocks=list(floor.clean_blocks))


#: How reports name each runtime of ``RUNTIMES``
RUNTIME_NAMES = {"eager": "eager PyTorch", "onnxruntime": "onnxruntime"}


def runtimes_disagree(
    eager: list[dict[str, Any]], onnx: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The batch sizes where the compared model is faster in one runtime and slower in the other.

    Faster means every alternating round's ratio above 1 (``speedup_low > 1``), slower every
    round below 1 (``speedup_high < 1``); a range that straddles 1 is neither, so noise alone
    does not make a disagreement. Each entry: ``batch_size``, ``faster_in``, ``slower_in``, the
    two speed-ups, and ``text``, a sentence that says so.
    """
    out = []
    onnx_by_batch = {r["batch_size"]: r for r in onnx}
    for e in eager:
        o = onnx_by_batch.get(e["batch_size"])
        if o is None:
            continue
        for fast, slow in ((e, o), (o, e)):
            if fast["speedup_low"] > 1.0 and slow["speedup_high"] < 1.0:
                names = [RUNTIME_NAMES.get(r.get("runtime", ""), "?") for r in (fast, slow)]
                out.append(
                    {
                        "batch_size": e["batch_size"],
                        "faster_in": names[0],
                        "slower_in": names[1],
                        "speedup_faster": fast["speedup"],
                        "speedup_slower": slow["speedup"],
                        "text": (
                            f"at batch {e['batch_size']} the model helps one runtime and hurts "
                            f"the other: {fast['speedup']:.2f}x in {names[0]} (every round "
                            f"faster), {slow['speedup']:.2f}x in {names[1]} (every round slower)"
                        ),
                    }
                )
    return out
