"""A pruning plan: which channels are removed, as plain data that round-trips through JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import FilterpruneError

PLAN_FORMAT = 1


class PlanError(FilterpruneError, ValueError):
    """A plan is malformed or does not fit the model it is applied to."""


@dataclass
class Plan:
    """Channels removed from each module, in that module's numbering before the removal.

    Attributes:
        removed_outputs: Module name -> removed output-channel indices (for a per-channel layer
            such as BatchNorm, its channels).
        removed_inputs: Module name -> removed input indices of a channel-mixing layer (for a
            Linear after a flatten: indices into ``in_features``).
        channels: Module name -> ``[in, out]`` channel counts before the removal, used to check
            that the plan fits the model it is applied to.
        groups: Group name -> removed channel indices within the group (for reports).
    """

    removed_outputs: dict[str, list[int]] = field(default_factory=dict)
    removed_inputs: dict[str, list[int]] = field(default_factory=dict)
    channels: dict[str, list[int]] = field(default_factory=dict)
    groups: dict[str, list[int]] = field(default_factory=dict)

    @property
    def num_removed(self) -> int:
        """Number of group channels removed (a channel shared by a residual stage counts once)."""
        return sum(len(v) for v in self.groups.values())

    @property
    def modules(self) -> list[str]:
        return list(self.channels)

    def is_empty(self) -> bool:
        return not any(self.removed_outputs.values()) and not any(self.removed_inputs.values())

    # ----- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "removed_outputs": self.removed_outputs,
            "removed_inputs": self.removed_inputs,
            "channels": self.channels,
            "groups": self.groups,
        }

    def to_json(self, *, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "plan") -> Plan:
        if not isinstance(data, dict):
            raise PlanError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("format", PLAN_FORMAT) != PLAN_FORMAT:
            raise PlanError(
                f"{source}: plan format {data.get('format')!r} is not supported "
                f"(this filterprune reads format {PLAN_FORMAT})"
            )
        plan = cls()
        for key in ("removed_outputs", "removed_inputs", "channels", "groups"):
            value = data.get(key, {})
            if not isinstance(value, dict):
                raise PlanError(f"{source}: '{key}' must be an object of name -> list of ints")
            clean: dict[str, list[int]] = {}
            for name, idx in value.items():
                if not isinstance(idx, list) or not all(
                    isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in idx
                ):
                    raise PlanError(
                        f"{source}: '{key}.{name}' must be a list of non-negative integers, "
                        f"got {idx!r}"
                    )
                clean[str(name)] = list(idx)
            setattr(plan, key, clean)
        for key in ("removed_outputs", "removed_inputs"):
            for name, idx in getattr(plan, key).items():
                counts = plan.channels.get(name)
                if counts is None or len(counts) != 2:
                    raise PlanError(f"{source}: '{key}.{name}' has no 'channels.{name}' entry")
                limit = counts[1] if key == "removed_outputs" else counts[0]
                if len(set(idx)) != len(idx) or any(i >= limit for i in idx):
                    raise PlanError(
                        f"{source}: '{key}.{name}' must hold distinct indices below {limit}"
                    )
                if len(idx) >= limit:
                    raise PlanError(f"{source}: '{key}.{name}' would remove every channel")
        return plan

    @classmethod
    def from_json(cls, text: str, *, source: str = "plan") -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"{source}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, source=source)

    # ----- composition ----------------------------------------------------------------------
    def then(self, later: Plan) -> Plan:
        """One plan, in this plan's original numbering, doing ``self`` and then ``later``."""
        out = Plan(channels={k: list(v) for k, v in self.channels.items()})
        for k, v in later.channels.items():
            if k not in out.channels:
                out.channels[k] = list(v)
        for key in ("removed_outputs", "removed_inputs"):
            first, second = getattr(self, key), getattr(later, key)
            merged: dict[str, list[int]] = {}
            slot = 1 if key == "removed_outputs" else 0
            for name in set(first) | set(second):
                total = out.channels[name][slot]
                gone = set(first.get(name, ()))
                alive = [i for i in range(total) if i not in gone]
                merged[name] = sorted(gone | {alive[i] for i in second.get(name, ())})
            setattr(out, key, merged)
        out.groups = {
            g: list(self.groups.get(g, [])) + list(later.groups.get(g, []))
            for g in set(self.groups) | set(later.groups)
        }
        return out
