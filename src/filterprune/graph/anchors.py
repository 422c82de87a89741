"""Where to observe each producing layer's feature maps (for activation-based criteria).

Molchanov et al. (2017) score a feature map *after the nonlinearity* that follows its layer. From
the trace we follow each producing layer's output through per-channel layers (BatchNorm, ...) to
the first activation function: ``conv -> bn -> relu`` is observed after the ReLU. The chain stops
where the tensor forks or meets any other op; the anchor is then the last module output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .tracer import OpRecord

ACTIVATIONS = frozenset(
    {
        "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu",
        "elu_", "selu", "celu", "gelu", "silu", "mish", "hardswish", "hardswish_", "sigmoid",
        "tanh", "softplus", "prelu",
    }
)  # fmt: skip

Where = Literal["activation", "module"]


@dataclass(frozen=True)
class Anchor:
    """Observe ``module``'s channels at the output of ``watch`` (a module), then ``activation``.

    ``activation`` is the ``__name__`` of the activation op applied to ``watch``'s output, or
    ``None`` to observe the module output itself.
    """

    module: str
    watch: str
    activation: str | None = None


def find_anchors(
    ops: list[OpRecord], producers: list[str], perchannel: set[str], where: Where = "activation"
) -> dict[str, Anchor]:
    """The anchor of each producing module, from the traced op records."""
    consumers: dict[int, list[OpRecord]] = {}
    produced_by: dict[str, OpRecord] = {}
    for op in ops:
        for i in dict.fromkeys(op.in_ids):
            consumers.setdefault(i, []).append(op)
        if op.name.startswith("module:"):
            produced_by.setdefault(op.name[7:], op)
    anchors = {}
    for name in producers:
        op = produced_by.get(name)
        watch = name
        activation = None
        while op is not None and op.out_ids:
            users = consumers.get(op.out_ids[0], [])
            if len(users) != 1:
                break
            nxt = users[0]
            if nxt.name.startswith("module:") and nxt.name[7:] in perchannel:
                watch, op = nxt.name[7:], nxt
                continue
            if where == "activation" and nxt.name in ACTIVATIONS:
                activation = nxt.name
            break
        anchors[name] = Anchor(name, watch, activation)
    return anchors
