"""Channel counts that code reads from module attributes, outside attention.

A module's ``forward`` often takes a size from an integer attribute set in ``__init__``:

- Res2Net's ``torch.split(out, self.width, 1)`` (the width of each piece; the pieces already
  lose the same positions, see ``rules.shape._couple_pieces``);
- SKNet's ``torch.split(x, self.in_channels // self.num_paths, 1)`` (the whole channel count);
- GhostNet's ``out[:, :self.oup]`` (how many leading channels are kept);
- ``torch.split(x, [self.a, self.b], 1)`` and ``x.narrow(1, 0, self.a)``;
- ``torch.split(x, self.split_indexes, 1)`` with a tuple or list of sizes (InceptionNeXt): piece
  ``i`` is counted by element ``i`` (``split_indexes[i]``), even where elements are equal.

Each such op records a :class:`Span`: the positions ``[start, stop)`` along the channel dimension
of its input that an attribute of the running module equal to ``value`` counts. When the trace
ends, every such attribute becomes a count member of the graph (:class:`~.specs.AttrSpec`, the
mechanism of the head counts in :mod:`.heads`): its positions are the units filling those
channel positions, so surgery sets it to the number of positions left and a plan applied to a
fresh model sets it too. The pruned copy of the probe then checks that the code's sizes follow.
A bound with no attribute of its value is written in the code (or computed from one the module
does not hold): its channels are frozen, naming the op and its source line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from . import labels as L
from .specs import int_attributes, sequence_attributes

TraceState = Any  # ``rules.base.TraceState`` (which imports the head book holding the spans)


@dataclass(eq=False)
class Span:
    """Channel positions ``[start, stop)`` of ``lab`` along ``dim`` counted by an attribute."""

    module: str
    lab: torch.Tensor  # the op's input labels (compressed)
    dim: int
    start: int
    stop: int
    value: int  # the attribute's value: the count of those positions in the model as traced
    attr: str = ""  # the one attribute counting them, where known (an element of a tuple)


def _attributes(tr: TraceState) -> set[int]:
    return set(int_attributes(tr.model.get_submodule(tr.current_module())).values())


def note_pieces(tr: TraceState, lab: torch.Tensor, dim: int, size: int, length: int) -> None:
    """``split(x, size, dim)`` into equal pieces: ``size`` and the whole ``length`` may be read
    from attributes (Res2Net's ``self.width``, SKNet's ``self.in_channels``)."""
    module = tr.current_module()
    tr.heads.spans.append(Span(module, lab, dim, 0, size, size))
    tr.heads.spans.append(Span(module, lab, dim, 0, length, length))


def read_bounds(
    tr: TraceState, name: str, args: tuple, kwargs: dict, x: torch.Tensor, lab: torch.Tensor
) -> bool:
    """Record the spans of a slice or split whose bounds are all attributes of the module.

    Returns false (the caller freezes the channels) when a bound is not an attribute's value,
    or the op is not a contiguous slice along one channel dimension.
    """
    varying = L.varying_dims(lab)
    found = _bounds(name, args, kwargs, x, varying)
    if found is None:
        return False
    dim, spans = found
    module = tr.current_module()
    sizes = tuple(value for _, _, value in spans)
    sequences = sequence_attributes(tr.model.get_submodule(module))
    whole = next((k for k, v in sequences.items() if v == sizes), None) if name == "split" else None
    if whole is not None:  # split by a tuple attribute: element i counts piece i
        for i, (start, stop, value) in enumerate(spans):
            tr.heads.spans.append(Span(module, lab, dim, start, stop, value, f"{whole}[{i}]"))
        return True
    known = _attributes(tr)
    if not spans or any(value not in known for _, _, value in spans):
        return False
    for start, stop, value in spans:
        tr.heads.spans.append(Span(module, lab, dim, start, stop, value))
    return True


def _bounds(
    name: str, args: tuple, kwargs: dict, x: torch.Tensor, varying: list[int]
) -> tuple[int, list[tuple[int, int, int]]] | None:
    """The channel dimension an op cuts, and ``(start, stop, count)`` for each size it reads."""
    if len(varying) != 1:
        return None
    dim = varying[0]
    size = x.shape[dim]
    if name == "__getitem__":
        items = args[1] if isinstance(args[1], tuple) else (args[1],)
        if any(i is None or i is Ellipsis for i in items) or len(items) <= dim:
            return None
        if any(not (isinstance(i, slice) and i == slice(None)) for d, i in enumerate(items)
               if d != dim):  # fmt: skip
            return None
        item = items[dim]
        if not isinstance(item, slice) or item.step not in (None, 1):
            return None
        return dim, _slice_spans(item.start, item.stop, size)
    if name == "narrow":
        d = kwargs.get("dim", args[1] if len(args) > 1 else None)
        start = kwargs.get("start", args[2] if len(args) > 2 else None)
        length = kwargs.get("length", args[3] if len(args) > 3 else None)
        if d is None or d % x.dim() != dim or not isinstance(start, int):
            return None
        if not isinstance(length, int) or start < 0:
            return None
        spans = [(0, start, start)] if start else []
        return dim, [*spans, (start, start + length, length)]
    if name == "split":
        sizes = kwargs.get("split_size_or_sections", args[1] if len(args) > 1 else None)
        d = kwargs.get("dim", args[2] if len(args) > 2 else 0)
        if d % x.dim() != dim or not isinstance(sizes, (list, tuple)):
            return None
        spans, offset = [], 0
        for s in sizes:
            spans.append((offset, offset + int(s), int(s)))
            offset += int(s)
        return dim, spans
    return None


def _slice_spans(start: Any, stop: Any, size: int) -> list[tuple[int, int, int]] | None:
    spans = []
    for bound in (start, stop):
        if bound is None or bound == 0:
            continue
        if not isinstance(bound, int) or bound < 0:
            return None  # counted from the end: the count is not an attribute's
        if bound < size:
            spans.append((0, bound, bound))
    return spans


def add_members(tr: TraceState, roots: torch.Tensor, sole_units: Any, add_count: Any) -> None:
    """At the end of the trace: every attribute equal to a span's count becomes a member."""
    for span in tr.heads.spans:
        counts = int_attributes(tr.model.get_submodule(span.module))
        names = [span.attr] if span.attr else [a for a, v in counts.items() if v == span.value]
        if not names or span.stop <= span.start:
            continue
        if span.lab.shape[span.dim] < span.stop:
            continue  # no channels vary along it
        part = span.lab.narrow(span.dim, span.start, span.stop - span.start)
        elements = sole_units(roots, part, span.dim)
        if all(e == 0 for e in elements):
            continue
        for attr in names:
            add_count(tr, f"{span.module}.{attr}" if span.module else attr, elements)
