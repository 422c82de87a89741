"""Groups: the channel sets that are pruned together, built from a trace.

A *class* (a merged set of channel elements) is the unit of removal. Classes produced by the same
set of layers form a *group*; its channels are ordered as in its first producing layer, so scores
line up with that layer's filters. A group is frozen, with reasons, if any of its channels must
stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .._gc import gc_paused
from ..errors import ConfigError, UnknownNameError
from ..plan import Plan
from .elements import UNTRACKED, ElementSets
from .specs import AttrSpec, LayerSpec
from .ties import tie_shared_parameters
from .tracer import Tracer


@dataclass
class Member:
    """A module touched by a group.

    ``role`` is ``"out"`` (the group holds some of its filters), ``"in"`` (some of its input
    channels) or ``"channel"`` (a per-channel layer such as BatchNorm).
    """

    module: str
    role: str
    positions: list[list[int]]  # per group channel, the module's positions holding it
    attribute: bool = False  # an integer attribute counting positions (``num_heads``)
    head_size: int = 0  # a head count attribute: the channels of one head as traced

    def channel_sums(self, values: torch.Tensor) -> torch.Tensor:
        """Per group channel, the sum of ``values`` (indexed by this module's positions)."""
        flat = [p for pos in self.positions for p in pos]
        owner = [i for i, pos in enumerate(self.positions) for _ in pos]
        index = torch.tensor(owner, dtype=torch.long, device=values.device)
        total = torch.zeros(len(self.positions), dtype=values.dtype, device=values.device)
        return total.index_add_(0, index, values[flat])


@dataclass
class Group:
    """Channels that must be removed together.

    Attributes:
        name: The first layer producing these channels (``features.0`` for a plain conv).
        classes: Element-class roots, one per prunable channel, in the first producer's order.
        members: Every module tensor that shrinks with the group.
        reasons: Why the group is frozen (empty if prunable).
    """

    name: str
    classes: list[int]
    members: list[Member] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.classes)

    @property
    def frozen(self) -> bool:
        return bool(self.reasons)

    @property
    def heads(self) -> list[str]:
        """The count attributes (``blocks.0.attn.num_heads``) that shrink with this group: a
        group of attention heads names its module's head count."""
        return [m.module for m in self.members if m.role == "channel" and m.head_size]

    @property
    def counts(self) -> list[str]:
        """Every count attribute that shrinks with this group: head counts and sizes the code
        reads from attributes (Res2Net's ``blocks.0.width``, GhostNet's ``ghost1.oup``)."""
        return [m.module for m in self.members if m.role == "channel" and m.attribute]

    @property
    def head_size(self) -> int:
        """The channels of one head (per q, k or v) as traced, for a group of heads; else 0."""
        return max((m.head_size for m in self.members if m.attribute), default=0)

    @property
    def producers(self) -> list[str]:
        return [m.module for m in self.members if m.role == "out"]

    def width(self, index: int) -> int:
        """How many positions of the first producer channel ``index`` covers (1, or a group)."""
        return len(self.members[0].positions[index])


def _positions(pos: torch.Tensor, channel: torch.Tensor, size: int) -> list[list[int]]:
    """Per group channel, the module positions holding it (``pos[i]`` holds ``channel[i]``)."""
    order = torch.argsort(channel, stable=True)
    pos = pos[order]
    counts = torch.bincount(channel, minlength=size)
    k = int(counts[0])
    if bool((counts == k).all()):  # the usual case: k positions per channel (1, or H*W)
        return pos.view(size, k).tolist()
    return [chunk.tolist() for chunk in torch.split(pos, counts.tolist())]


def _first_appearances(values: torch.Tensor) -> torch.Tensor:
    """The distinct entries of ``values`` in the order they first appear."""
    distinct, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((len(distinct),), len(values), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(values)), reduce="amin")
    return distinct[first.argsort()]


class DependencyGraph:
    """The prunability analysis of one model: every group, every frozen group with its reasons."""

    def __init__(
        self,
        model: nn.Module,
        tracer: Tracer,
        *,
        ignore: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.sets: ElementSets = tracer.sets
        self.module_in = tracer.module_in
        self.module_out = tracer.module_out
        self.leaves: dict[str, LayerSpec] = {n: tracer.leaves[n] for n in tracer.order}
        self.order = tracer.order
        self.ops = tracer.ops
        self.on_meta = tracer.on_meta  # the probe traces its copies the same way
        self.read_shapes = tracer.read_shapes
        self.size_reads = tracer.size_reads
        self.grouped = tracer.grouped
        self.heads = tracer.heads.mode  # how attention heads lose channels (see .heads)
        modules = dict(model.named_modules())
        self.modules = {n: modules[n] for n in self.order if n in modules}
        # parameters pruned with channels (layer scales, see ParamSpec) -> their owning module
        self.param_owners = {
            n: model.get_submodule(n.rpartition(".")[0]) for n in self.order if n not in modules
        }
        for name in ignore:
            for e in self.module_out.get(name, ()):
                self.sets.freeze(e, f"layer '{name}' is ignored by the user")
        # layers sharing one tensor lose the same channels (or keep them, with a reason)
        tie_shared_parameters(self.modules, self.leaves, self.module_in, self.module_out, self.sets)
        self.groups: list[Group] = self._build()

    def _build(self) -> list[Group]:
        """Form the groups and their members, vectorised over every module's channel list."""
        root = self.sets.roots()
        frozen = {int(root[e]): self.sets.reasons(e) for e in self.sets.frozen_elements()}
        channel_lists: list[tuple[str, str, torch.Tensor]] = []
        for name in self.order:
            if self.leaves[name].kind == "mixing":
                roles = [("out", self.module_out.get(name, [])), ("in", self.module_in[name])]
            else:
                roles = [("channel", self.module_out.get(name, []))]
            for role, elems in roles:
                if elems:
                    channel_lists.append((name, role, root[torch.tensor(elems)]))
        producers: dict[int, list[str]] = {}
        for name, role, roots in channel_lists:
            if role != "out":
                continue
            for r in torch.unique(roots).tolist():
                if r != UNTRACKED:
                    producers.setdefault(r, []).append(name)
        by_key: dict[tuple[str, ...], list[int]] = {}
        for r, owners in producers.items():
            by_key.setdefault(tuple(owners), []).append(r)
        first_out = {name: roots for name, role, roots in channel_lists if role == "out"}
        group_of = torch.full((len(root),), -1, dtype=torch.long)
        channel_of = torch.full((len(root),), -1, dtype=torch.long)
        groups: list[Group] = []
        for owners, members in by_key.items():
            wanted = torch.zeros(len(root), dtype=torch.bool)
            wanted[members] = True
            roots = first_out[owners[0]]
            ordered = _first_appearances(roots[wanted[roots]])  # the first producer's order
            group_of[ordered] = len(groups)
            channel_of[ordered] = torch.arange(len(ordered))
            group = Group(name=owners[0], classes=ordered.tolist())
            for r in [c for c in group.classes if c in frozen] if frozen else ():
                for reason in frozen[r]:
                    if reason not in group.reasons:
                        group.reasons.append(reason)
            groups.append(group)
        for name, role, roots in channel_lists:
            owner = group_of[roots]
            hit = owner >= 0
            if not bool(hit.any()):
                continue
            for gi in torch.unique(owner[hit]).tolist():
                pos = (owner == gi).nonzero().flatten()
                positions = _positions(pos, channel_of[roots[pos]], groups[gi].size)
                spec = self.leaves[name]
                attribute = isinstance(spec, AttrSpec)
                head_size = spec.head_size if attribute else 0
                groups[gi].members.append(Member(name, role, positions, attribute, head_size))
        for group in groups:  # the first producer's filters first: scores follow its order
            first = [m.module == group.name and m.role == "out" for m in group.members]
            group.members = [m for m, f in zip(group.members, first, strict=True) if f] + [
                m for m, f in zip(group.members, first, strict=True) if not f
            ]
        order = {n: i for i, n in enumerate(self.order)}
        groups.sort(key=lambda g: order[g.name])
        # two groups with the same first producer (DPN's ``x[:, :self.num_1x1_c]`` and
        # ``x[:, self.num_1x1_c:]`` of one conv, each part with its own other producers): the
        # later ones are named ``conv#2``, ``conv#3``; ``producers[0]`` is still the layer
        seen: dict[str, int] = {}
        for g in groups:
            seen[g.name] = seen.get(g.name, 0) + 1
            if seen[g.name] > 1:
                g.name = f"{g.name}#{seen[g.name]}"
        return groups

    # ----- queries ----------------------------------------------------------------------------
    def module_of(self, name: str) -> nn.Module:
        """The module called ``name``, or the owner of the parameter called ``name``."""
        module = self.modules.get(name)
        return module if module is not None else self.param_owners[name]

    def kind_of(self, name: str) -> str:
        """The module type's name, or ``parameter`` for a parameter member."""
        if name in self.modules:
            return type(self.modules[name]).__name__
        return "count attribute" if isinstance(self.leaves[name], AttrSpec) else "parameter"

    @property
    def prunable(self) -> list[Group]:
        return [g for g in self.groups if not g.frozen and g.size > 1]

    @property
    def frozen(self) -> list[Group]:
        return [g for g in self.groups if g.frozen]

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        known = ", ".join(g.name for g in self.groups)
        raise UnknownNameError(f"no group named '{name}'; groups are: {known}")

    def report(self) -> str:
        """A readable prunability report: every group, its size and members; frozen reasons."""
        lines = [
            f"{type(self.model).__name__}: {len(self.groups)} channel groups, "
            f"{len(self.prunable)} prunable, {len(self.frozen)} frozen"
        ]
        heads = [g for g in self.groups if g.heads]
        if heads:
            kept = sum(1 for g in heads if g.frozen)
            lines.append(
                f"attention: {len(heads)} group{'s' if len(heads) != 1 else ''} of heads, "
                f"{len(heads) - kept} prunable, "
                f"{kept} frozen"
            )
        for g in self.groups:
            state = "FROZEN" if g.frozen else "prunable"
            if g.heads:
                size = f"{g.size} head{'s' if g.size != 1 else ''}"
                lines.append(
                    f"- {g.name}: {size} of dimension {g.head_size} "
                    f"(count: {', '.join(g.heads)}), {state}"
                )
            else:
                lines.append(f"- {g.name}: {g.size} channel{'s' if g.size != 1 else ''}, {state}")
            for m in g.members:
                lines.append(f"    {m.role:>3} {m.module} ({self.kind_of(m.module)})")
            for r in g.reasons:
                lines.append(f"    reason: {r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def anchors(self, where: str = "activation") -> dict:
        """Where each producing layer's feature maps are observed (see :mod:`.anchors`)."""
        from .anchors import find_anchors

        producers = list(dict.fromkeys(p for g in self.prunable for p in g.producers))
        perchannel = {n for n, s in self.leaves.items() if s.kind == "perchannel"}
        return find_anchors(self.ops, producers, perchannel, where)

    @gc_paused()
    def update(self, plan: Plan) -> None:
        """Follow a plan that was just applied, without tracing again.

        Removed positions are dropped from every module's channel list; the element classes of the
        remaining channels, and every freeze reason, stay valid.
        """
        for key, table in (
            ("removed_outputs", self.module_out),
            ("removed_inputs", self.module_in),
        ):
            for name, removed in getattr(plan, key).items():
                gone = set(removed)
                table[name] = [e for i, e in enumerate(table[name]) if i not in gone]
                if self.leaves[name].kind == "perchannel":
                    self.module_in[name] = self.module_out[name]
        self.groups = self._build()

    # ----- plans ------------------------------------------------------------------------------
    def plan(self, removed: dict[str, list[int]]) -> Plan:
        """The plan that removes ``removed[group_name]`` (channel indices within each group)."""
        outs: dict[str, set[int]] = {}
        ins: dict[str, set[int]] = {}
        by_name = {g.name: g for g in self.groups}
        for gname, indices in removed.items():
            group = by_name.get(gname)
            if group is None:
                raise UnknownNameError(
                    f"no group named '{gname}'; groups are: {', '.join(by_name)}"
                )
            if group.frozen and indices:
                raise ConfigError(f"group '{gname}' is frozen: {group.reasons[0]}")
            for m in group.members:
                target = ins if m.role == "in" else outs
                bucket = target.setdefault(m.module, set())
                for i in indices:
                    bucket.update(m.positions[i])
        channels = {}
        for name in dict.fromkeys([*outs, *ins]):
            n_in, n_out = self.leaves[name].channels(self.module_of(name))
            channels[name] = [n_in, n_out]
        return Plan(
            removed_outputs={k: sorted(v) for k, v in outs.items() if v},
            removed_inputs={k: sorted(v) for k, v in ins.items() if v},
            channels={k: v for k, v in channels.items() if outs.get(k) or ins.get(k)},
            groups={k: sorted(v) for k, v in removed.items() if v},
        )
