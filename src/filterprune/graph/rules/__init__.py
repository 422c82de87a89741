"""Channel rules: how each op maps input labels to output labels.

Rules are looked up by the op's ``__name__`` (``torch.add``, ``Tensor.add`` and ``Tensor.__add__``
behave alike). An op with no rule is never guessed: every channel it touches is frozen, with a
reason naming the op and the source line. Leaf modules are handled by :func:`apply_leaf` using
their :class:`~filterprune.graph.specs.LayerSpec`.

One module per op family, each registering its rules into :data:`RULES` with :func:`rule`:
``elementwise`` (arithmetic, activations, dtype/copy ops), ``matmul``, ``functional`` (a layer's weight called functionally), ``spatial`` (pooling,
interpolation, padding), ``reductions`` (and softmax-like ops along a dimension), ``shape``
(view, permute, cat, split, chunk, getitem, ...) and ``leaves`` (layers, through their specs).
A new op rule goes in the module of its family (see "Where to add ..." in docs/design.md).
"""

from __future__ import annotations

from . import (  # noqa: F401  (registration)
    attention,
    elementwise,
    functional,
    leaves,
    matmul,
    reductions,
    shape,
    spatial,
)
from .base import RULES, Rule, TraceState, apply_rule, rule
from .elementwise import ELEMENTWISE
from .leaves import apply_leaf
from .reductions import REDUCTIONS
from .shape import NeedsValues, setitem
from .spatial import SPATIAL

__all__ = [
    "ELEMENTWISE",
    "REDUCTIONS",
    "RULES",
    "SPATIAL",
    "NeedsValues",
    "Rule",
    "TraceState",
    "apply_leaf",
    "apply_rule",
    "rule",
    "setitem",
]
