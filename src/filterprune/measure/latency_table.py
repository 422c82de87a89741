"""A latency lookup table: the measured forward time of single layers against their widths.

NetAdapt (Yang et al., 2018) predicts a network's latency from a table of measured layer
latencies; HALP (Shen et al., 2022) ranks channels against such a table. Here the table serves
three things in a run whose target is latency:

* **widths** (:mod:`filterprune.measure.staircase`): a layer's time is a staircase in its width
  on most CPUs (oneDNN computes output channels in blocks of 8 or 16 floats), so a width just
  above a step costs as much as the whole next block. The run keeps each layer at the widest
  width of the lowest step near the ranking's choice;
* **the cost term** of the ranking (``cost="latency"``): each convolution's and linear layer's
  time comes from the table (:func:`layer_table_costs`);
* **a prediction** of the whole model's time (:meth:`LatencyTable.predict_ms`), whose error
  against the measured speed-up the run reports.

A layer is identified by its :class:`LayerShape`: class, kernel, stride, padding, dilation,
grouping, bias, and the shape of its input with the channel axis left open. Its time at widths
``(cin, cout)`` is measured once on a fresh layer of that shape and random input, on this
machine, with the given thread count: several short blocks of calls, of which the fastest
block's time per call is kept. The minimum is right here, where the medians of the side-by-side
comparison are not: it estimates the layer's own cost, which other processes can only add to,
and a table entry is never divided by a figure from another moment of the same run.

Entries are cached in a JSON file per machine (CPU model, torch version, threads) under
``FILTERPRUNE_CACHE_DIR`` or ``~/.cache/filterprune``. Writes merge with what the file holds
and replace it atomically, so two processes sharing the cache lose at most an entry, which is
measured again. A file that is not a table written by filterprune is left untouched and the
table lives in memory only, with a warning naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from filterprune.measure._forward import ExampleInputs, as_input_tuple, eval_mode
from filterprune.measure.machine import cpu_model

logger = logging.getLogger("filterprune")

__all__ = ["CACHE_ENV", "LatencyTable", "LayerShape", "layer_shapes", "layer_table_costs"]

CACHE_ENV = "FILTERPRUNE_CACHE_DIR"
FORMAT = 1
BLOCKS = 5  # timed blocks per entry; the fastest block's time per call is kept
BLOCK_SECONDS = 0.002  # each block runs at least this long
SLOW_CALL = 0.02  # a call this slow (seconds) is timed in 2 blocks of one call, after its warm-up
PROGRESS_SECONDS = 20.0  # a line at least this often while timing
SAVE_EVERY = 64  # new entries between writes of the cache file


@dataclass(frozen=True)
class LayerShape:
    """What a layer's time depends on, except its two widths.

    Attributes:
        kind: ``"Conv1d"``, ``"Conv2d"``, ``"Conv3d"`` or ``"Linear"``.
        cin, cout: The widths the layer has now (in and out channels).
        kernel, stride, padding, dilation: As the conv has them (empty for a linear layer).
        groups: ``"depthwise"`` (groups = in channels, out a multiple of in), or a fixed count.
        bias: Whether it has a bias.
        input_shape: The traced input's shape; its channel axis is replaced by ``cin``.
    """

    kind: str
    cin: int
    cout: int
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] | str = ()
    dilation: tuple[int, ...] = ()
    groups: str | int = 1
    bias: bool = True
    input_shape: tuple[int, ...] = ()

    @classmethod
    def of(cls, module: nn.Module, x: torch.Tensor) -> LayerShape | None:
        """The shape of ``module`` called on ``x``; ``None`` for a layer the table does not time
        (not a plain conv or linear layer, or a padding mode other than zeros)."""
        if isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward:
            return cls("Linear", module.in_features, module.out_features,
                       bias=module.bias is not None, input_shape=tuple(x.shape))  # fmt: skip
        convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
        if not isinstance(module, convs) or module.padding_mode != "zeros":
            return None
        if type(module).forward not in {c.forward for c in convs}:
            return None  # a subclass computing its own forward (timm's Conv2dSame pads first)
        g = module.groups
        if g > 1 and g == module.in_channels and module.out_channels % g == 0:
            groups: str | int = "depthwise"
        else:
            groups = g
        return cls(
            type(module).__name__ if type(module) in convs else _base_conv(module),
            module.in_channels,
            module.out_channels,
            tuple(module.kernel_size),
            tuple(module.stride),
            module.padding if isinstance(module.padding, str) else tuple(module.padding),
            tuple(module.dilation),
            groups,
            module.bias is not None,
            tuple(x.shape),
        )

    def key(self, cin: int, cout: int) -> str:
        """The table key of this layer at widths ``cin``, ``cout``."""
        axis = self._channel_axis()
        shape = list(self.input_shape)
        shape[axis] = -1
        parts = [self.kind, self.kernel, self.stride, self.padding, self.dilation, self.groups,
                 self.bias, tuple(shape), cin, cout]  # fmt: skip
        return "|".join(str(p) for p in parts)

    def _channel_axis(self) -> int:
        return len(self.input_shape) - 1 if self.kind == "Linear" else 1

    def build(self, cin: int, cout: int) -> tuple[nn.Module, torch.Tensor] | None:
        """A fresh layer at these widths and a random input for it; ``None`` where the widths do
        not fit the layer's grouping."""
        if cin < 1 or cout < 1:
            return None
        shape = list(self.input_shape)
        shape[self._channel_axis()] = cin
        x = torch.randn(shape)
        if self.kind == "Linear":
            return nn.Linear(cin, cout, bias=self.bias), x
        if self.groups == "depthwise":
            multiplier = max(1, self.cout // self.cin)
            if cout != cin * multiplier:
                return None
            groups = cin
        else:
            groups = int(self.groups)
            if cin % groups or cout % groups:
                return None
        conv = getattr(nn, self.kind)
        layer = conv(cin, cout, self.kernel, self.stride, self.padding, self.dilation, groups,
                     bias=self.bias)  # fmt: skip
        return layer, x


def _base_conv(module: nn.Module) -> str:
    """The ``torch.nn`` conv class ``module`` is an instance of (its subclasses time alike)."""
    return next(c.__name__ for c in (nn.Conv1d, nn.Conv2d, nn.Conv3d) if isinstance(module, c))


def layer_shapes(model: nn.Module, example_inputs: ExampleInputs) -> dict[str, LayerShape]:
    """The :class:`LayerShape` of every conv and linear layer ``model`` calls on the example
    (its first call, where a layer is called several times)."""
    shapes: dict[str, LayerShape] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: Any) -> None:
            if name not in shapes and inputs and isinstance(inputs[0], torch.Tensor):
                shape = LayerShape.of(module, inputs[0])
                if shape is not None:
                    shapes[name] = shape

        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        with eval_mode(model), torch.no_grad():
            model(*as_input_tuple(example_inputs))
    finally:
        for h in handles:
            h.remove()
    return shapes


def _time_call_ms(layer: nn.Module, x: torch.Tensor) -> float:
    """Milliseconds per call of ``layer(x)``: the fastest of :data:`BLOCKS` blocks (2 for a
    call slower than :data:`SLOW_CALL`, whose own length averages out the noise)."""
    with torch.inference_mode():
        started = time.perf_counter()
        layer(x)  # warm-up, and the estimate of one call
        one = max(time.perf_counter() - started, 1e-7)
        calls = max(1, math.ceil(BLOCK_SECONDS / one))
        best = math.inf
        for _ in range(BLOCKS if one < SLOW_CALL else 2):
            started = time.perf_counter()
            for _ in range(calls):
                layer(x)
            best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e3


def default_cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "filterprune"


class LatencyTable:
    """Measured milliseconds of single layers at given widths, on this machine, cached on disk.

    Args:
        threads: CPU threads to time with (``torch.set_num_threads`` during each timing);
            ``None``: the current count.
        cache_dir: Where the table's file lives; ``None``: ``FILTERPRUNE_CACHE_DIR`` or
            ``~/.cache/filterprune``; ``False``: memory only.
    """

    def __init__(self, threads: int | None = None, cache_dir: str | Path | bool | None = None):
        self.threads = int(threads or torch.get_num_threads())
        self.entries: dict[str, float] = {}
        self.measured = 0
        self._unsaved = 0
        self._said = time.perf_counter()
        self.path: Path | None = None
        if cache_dir is not False:
            root = default_cache_dir() if cache_dir in (None, True) else Path(str(cache_dir))
            machine = f"{cpu_model()}|torch {torch.__version__}|threads {self.threads}"
            digest = hashlib.sha256(machine.encode()).hexdigest()[:12]
            self.path = root / f"latency-table-{digest}.json"
            self.machine = machine
            self.entries.update(self._read())

    def _read(self) -> dict[str, float]:
        """The cached entries; a file that is not a table is left alone and disables the cache."""
        if self.path is None or not self.path.exists():
            return {}
        problem, entries = None, None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            problem = str(exc)
        else:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                found = data.get("format") if isinstance(data, dict) else type(data).__name__
                problem = f"field 'format' is {found!r}, expected {FORMAT}"
            elif not isinstance(data.get("entries"), dict):
                problem = "field 'entries' is not an object"
            else:
                entries = data["entries"]
        if problem is not None or entries is None:
            logger.warning(
                "latency table %s is not readable (%s); timing layers again without caching. "
                "Fix: delete the file, or set %s to another folder",
                self.path,
                problem,
                CACHE_ENV,
            )
            self.path = None
            return {}
        return {
            k: float(v)
            for k, v in entries.items()
            if isinstance(k, str) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
        }

    def save(self) -> None:
        """Merge the new entries into the cache file and replace it atomically."""
        if self.path is None or not self._unsaved:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            merged = {**self._read(), **self.entries}
            if self.path is None:  # the file became unreadable meanwhile
                return
            body = {"format": FORMAT, "machine": self.machine, "entries": merged}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".latency-table-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(body, f)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._unsaved = 0
        except OSError as exc:
            logger.warning("could not write the latency table %s: %s", self.path, exc)

    def layer_ms(self, shape: LayerShape, cin: int | None = None, cout: int | None = None) -> float:
        """Milliseconds of one call of the layer ``shape`` at widths ``cin``, ``cout`` (its own
        widths by default); ``nan`` where the widths do not fit its grouping."""
        cin = shape.cin if cin is None else cin
        cout = shape.cout if cout is None else cout
        key = shape.key(cin, cout)
        if key in self.entries:
            return self.entries[key]
        built = shape.build(cin, cout)
        if built is None:
            return math.nan
        layer, x = built
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            ms = _time_call_ms(layer.eval(), x)
        finally:
            torch.set_num_threads(before)
        self.entries[key] = ms
        self.measured += 1
        if time.perf_counter() - self._said >= PROGRESS_SECONDS:  # long tables say what they do
            self._said = time.perf_counter()
            logger.info("latency table: %d layer widths timed so far", self.measured)
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY:
            self.save()
        return ms

    def predict_ms(self, shapes: Mapping[str, LayerShape]) -> float:
        """The table's time of a model: the sum over its conv and linear layers at their widths
        (other layers are not in the table, so this is the share of time those layers take)."""
        return sum(v for s in shapes.values() if not math.isnan(v := self.layer_ms(s)))


def layer_table_costs(
    model: nn.Module,
    modules: Mapping[str, nn.Module],
    example_inputs: ExampleInputs,
    table: LatencyTable | None = None,
) -> dict[str, float]:
    """Milliseconds per named module from the table, for the modules it can time (0 for others)."""
    table = table or LatencyTable()
    shapes = layer_shapes(model, example_inputs)
    out = {}
    for name in modules:
        ms = table.layer_ms(shapes[name]) if name in shapes else 0.0
        out[name] = 0.0 if math.isnan(ms) else ms
    table.save()
    return out
