"""Attention heads: which reshapes split channels into heads, and the counts the code keeps.

A reshape that splits one channel dimension into several (``qkv.reshape(B, N, 3, heads, hd)``)
is recorded as a *split*. A channel shuffle splits the same way, so nothing is decided there:
only when the split's channels reach an attention op (``q @ k^T`` over the head size, or
``F.scaled_dot_product_attention``) does the split become a set of heads, and then

- ``"whole"`` (the default): every head goes as one unit. Each row of the split (everything but
  its last dimension) is merged; q, k and v of a head are already one unit through the ``unbind``
  or the product that uses them together, and the output projection's input columns follow the
  head through ``attn @ v``. The head count the code reshapes by must be an integer attribute of
  the module running the reshape (``self.num_heads``); it is the one the surgery lowers;
- ``"dims"``: every head loses the same positions (column ``j`` of every row is merged), so the
  head count stays and ``head_dim`` shrinks. The softmax scale the module stores stays that of
  the original head size; ``F.scaled_dot_product_attention`` without ``scale=`` computes it from
  the size, so there the head size is kept.

A split that never reaches attention merges column ``j`` of every row (a channel shuffle: the
code recomputes the columns from the channel count). When the trace ends, every integer attribute
of a module that ran a split and whose value is the length of a dimension carrying those
channels in one of its reshapes (``num_heads``, ``head_dim``, ``attn_dim``) becomes a member of
the graph (:class:`~.specs.AttrSpec`) holding, at each of its positions, the unit that removes
it, if one unit alone fills that position's slice; the probe then checks the counts on a pruned
copy. A head count written in the code as a number has no attribute: the heads fall back to
``"dims"``, and if the head size is written too the probe freezes the channels, naming the
reshape and its source line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from . import labels as L
from . import sizes
from .elements import UNTRACKED
from .sizes import Span
from .specs import AttrSpec, int_attributes

# ``tr`` below is the trace's state (``rules.base.TraceState``, which imports this module)
TraceState = Any

#: How attention heads lose channels: whole heads, or the same positions of every head.
HEADS = ("whole", "dims")

_RESHAPE_OPS = {"view", "reshape", "unflatten", "flatten", "view_as", "reshape_as"}


@dataclass(eq=False)
class Split:
    """One reshape splitting a channel dimension into ``dims`` (rows first, columns last)."""

    module: str
    after: torch.Tensor  # the reshape's output labels (compressed)
    dims: list[int]
    mode: str | None = None  # "whole", "dims", or None (no attention: columns are merged)


@dataclass
class HeadBook:
    """The splits of one trace, the attention decisions, and sizes that must not change."""

    mode: str = "whole"
    splits: list[Split] = field(default_factory=list)
    split_of: dict[int, int] = field(default_factory=dict)  # element -> index of its split
    fixed: list[tuple[torch.Tensor, int, str]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)  # sizes read from attributes (..sizes)
    inside: list[tuple[Split, torch.Tensor, str]] = field(default_factory=list)  # cuts in heads

    def add_split(self, module: str, after: torch.Tensor, dims: list[int]) -> None:
        index = len(self.splits)
        self.splits.append(Split(module, after, dims))
        for e in torch.unique(after).tolist():
            if e != UNTRACKED:
                self.split_of.setdefault(e, index)

    def attention(self, tr: TraceState, *labs: torch.Tensor) -> str | None:
        """Decide every split whose channels meet in an attention op; the mode they share.

        ``"whole"`` only when every split involved removes whole heads; ``None`` when no split is
        involved (the channels were never split into heads).
        """
        found: list[Split] = []
        for lab in labs:
            for e in torch.unique(lab).tolist():
                i = self.split_of.get(e)
                if i is not None and self.splits[i] not in found:
                    found.append(self.splits[i])
        if not found:
            return None
        for split in found:
            if split.mode is None:
                split.mode = self._decide(tr, split)
        return "whole" if all(s.mode == "whole" for s in found) else "dims"

    def follow(self, tr: TraceState, attn: torch.Tensor, value: torch.Tensor) -> None:
        """``attn @ v`` with ``v`` from its own projection (ConViT's GPSA, LeViT's ``kv``): a map
        labelled by decided heads decides the splits of ``v`` as :meth:`attention` does."""
        for e in torch.unique(attn).tolist():
            i = self.split_of.get(e)
            if i is not None and self.splits[i].mode is not None:
                self.attention(tr, value)
                return

    def _decide(self, tr: TraceState, split: Split) -> str:
        if self.mode != "whole" or len(split.dims) < 2:
            return "dims"
        counts = set(int_attributes(tr.model.get_submodule(split.module)).values())
        if not any(split.after.shape[d] in counts for d in split.dims[:-1]):
            return "dims"  # the head count is written in the code: heads cannot go
        cols = split.dims[-1]
        tr.union(split.after.narrow(cols, 0, 1), split.after)
        return "whole"

    def within_heads(self, tr: TraceState, lab: torch.Tensor, dim: int, reason: str) -> bool:
        """A cut of a split's channels along a dimension other than its head count, fine if the
        heads go whole (the cut dimension keeps its length); ``reason`` freezes them if not.

        LeViT, TinyViT and EfficientFormer: ``qkv.view(B, N, self.num_heads, -1).split([
        self.key_dim, self.key_dim, self.val_dim], dim=3)`` cuts every head's columns into its
        q, k and v; CaiT's ``q, k, v = qkv[0], qkv[1], qkv[2]`` takes the rows of the ``3``.
        Whole heads leave those lengths as they were. Returns false where ``lab`` is not one
        split's channels or ``dim`` is its head count (the code picks heads by position).
        """
        elems = torch.unique(lab).tolist()
        index = {self.split_of.get(e) for e in elems}
        if len(index) != 1 or None in index:
            return False
        split = self.splits[next(iter(index))]
        where = _coordinates(split)
        if any(e not in where for e in elems):
            return False
        along = [where[e] for e in L.vector(lab, dim, lab.shape[dim])]
        moving = [k for k in range(len(split.dims)) if len({c[k] for c in along}) > 1]
        if len(moving) != 1:
            return False
        axis = split.dims[moving[0]]
        counts = set(int_attributes(tr.model.get_submodule(split.module)).values())
        if axis != split.dims[-1] and split.after.shape[axis] in counts:
            return False  # the head count's own dimension
        self.inside.append((split, lab, reason))
        return True

    def keep_size(self, lab: torch.Tensor, dim: int, reason: str) -> None:
        """Dimension ``dim`` of a tensor labelled ``lab`` must keep its length."""
        self.fixed.append((lab, dim % lab.dim(), reason))

    def finish(self, tr: TraceState) -> None:
        """At the end of the trace: merge the undecided splits' columns, freeze the sizes that
        must stay, and add the count attributes of the attention modules as members."""
        for split in self.splits:
            if split.mode in (None, "dims"):
                _merge_columns(tr, split.after, split.dims)
        for split, lab, reason in self.inside:
            if split.mode != "whole":
                tr.freeze(lab, reason)
        if not self.splits and not self.fixed and not self.spans:
            return
        roots = tr.sets.roots()
        for lab, dim, reason in self.fixed:
            for element in _sole_units(roots, lab, dim):
                if element != UNTRACKED:
                    tr.sets.freeze(element, reason)
        self._count_attributes(tr, roots)
        sizes.add_members(tr, roots, _sole_units, _add_count)

    def _count_attributes(self, tr: TraceState, roots: torch.Tensor) -> None:
        # every split, heads or not: a shuffle's ``view(b, self.groups, self.width, h, w)``
        # reads its column count from an attribute as a head size does
        modules = {s.module for s in self.splits}
        units = {int(roots[e]) for s in self.splits for e in torch.unique(s.after).tolist()}
        units.discard(UNTRACKED)
        heads = {
            int(roots[e]) for s in self.splits if s.mode for e in torch.unique(s.after).tolist()
        }
        heads.discard(UNTRACKED)
        whole = {
            int(roots[e])
            for s in self.splits
            if s.mode == "whole"
            for e in torch.unique(s.after).tolist()
        }
        whole.discard(UNTRACKED)
        for record in tr.ops:
            if record.module not in modules or record.name not in _RESHAPE_OPS:
                continue
            counts = int_attributes(tr.model.get_submodule(record.module))
            for lab in record.outputs:
                if not set(roots[torch.unique(lab)].tolist()) & units:
                    continue
                for d in L.varying_dims(lab):
                    names = [a for a, v in counts.items() if v == lab.shape[d]]
                    if not names:
                        continue
                    if _join_parts(tr, roots, lab, d, whole):
                        roots = tr.sets.roots()
                    elements = _sole_units(roots, lab, d)
                    if all(e == UNTRACKED for e in elements):
                        continue  # no unit removes a whole slice: this length stays
                    size = 0  # a head count if heads are split off along d with their size
                    later = [lab.shape[a] for a in L.varying_dims(lab) if a > d]
                    if later and {int(roots[e]) for e in elements} & heads:
                        size = int(torch.tensor(later).prod())
                        # LeViT's stage 2: num_heads == key_dim == 16; the count is the head's
                        names = [a for a in names if "head" in a] or names
                    for attr in names:
                        name = f"{record.module}.{attr}" if record.module else attr
                        _add_count(tr, name, elements, size)


def pair_read_width(graph: Any, record: Any) -> bool:
    """Pair the heads merged back by ``record`` with the width the code read from another tensor.

    BEiT, Swin-V2 and EVA end attention with ``x.transpose(1, 2).reshape(B, N, C)``, ``C`` read
    from the block's input (``B, N, C = x.shape``); Twins, ConViT, XCiT and CaiT split with
    ``reshape(B, N, 3, self.num_heads, C // self.num_heads)``: either way the heads' total width
    must stay the embedding width. Called by the probe when a pruned copy disagrees at such a
    reshape: if its module read, before it, the size of a tensor with one channel dimension as
    long as the reshape's last dimensions that carry attention-head channels (merged, or one
    part's heads), and other channels, position ``p`` of those channels is paired with
    position ``p`` of the heads. Removing head ``h`` then removes channels
    ``h * head_dim ... (h + 1) * head_dim - 1`` of the embedding with it (every block's head
    ``h`` on one stream), so both widths shrink alike and stay equal. Plain channels of an
    attention block are paired the same way, channel by channel: PVT-v2's spatial reduction
    ``self.sr(x).reshape(B, C, -1)`` keeps its conv's width that of the stream. Returns whether
    it paired.

    Args:
        graph: The :class:`~.groups.DependencyGraph` being probed (its ``sets`` are merged).
        record: The culprit op (``OpRecord``) of the pruned copy's disagreement.
    """
    if record.name not in _RESHAPE_OPS:
        return False
    heads = {c for g in graph.groups if g.heads for c in g.classes}
    paired = False
    for other in graph.ops:  # the same line in every block
        if (other.where, other.name) == (record.where, record.name) and heads:
            paired |= _pair_one(graph, other, heads)
    return paired


def _pair_one(graph: Any, record: Any, heads: set[int]) -> bool:
    if len(record.outputs) != 1:
        return False
    lab = record.outputs[0]
    dims = L.varying_dims(lab)
    roots = graph.sets.roots()
    reads = [
        r for module, before, r in graph.size_reads
        if module == record.module and before <= record.index
    ]  # fmt: skip
    for width in _read_widths(reads):
        merged = _trailing(lab, dims, len(width))
        if merged is None:
            continue
        own = {int(roots[e]) for e in merged}
        if {int(roots[e]) for e in width} & own:
            continue  # the heads' own channels (or paired already)
        if not own <= heads and own & heads:
            continue  # heads beside other channels
        graph.sets.union_pairs(zip(width, merged, strict=True))
        return True
    return False


def _read_widths(reads: list[torch.Tensor]) -> list[list[int]]:
    """The channel vector of every tensor read with one channel dimension."""
    out = []
    for read in reads:
        found = L.varying_dims(read)
        if len(found) == 1:
            out.append(L.vector(read, found[0], read.shape[found[0]]))
    return out


def _trailing(lab: torch.Tensor, dims: list[int], size: int) -> list[int] | None:
    """The labels of ``lab``'s last varying dimensions whose lengths multiply to ``size``, in
    order, at index 0 of the others: the merged ``(heads, head size)`` of ``reshape(B, N, C)``
    or one part's heads of ``reshape(B, N, 3, heads, C // heads)``."""
    total = 1
    for i in range(len(dims) - 1, -1, -1):
        total *= lab.shape[dims[i]]
        if total == size:
            block = lab
            for d in dims[:i]:
                block = block.narrow(d, 0, 1)
            keep = dims[i:]
            block = block.movedim(keep, list(range(block.dim() - len(keep), block.dim())))
            flat = block.reshape(-1, size) if block.numel() >= size else None
            return None if flat is None else flat[0].tolist()
        if total > size:
            return None
    return None


def _coordinates(split: Split) -> dict[int, tuple[int, ...]]:
    """Each element of a split: its index along each of the split's dimensions."""
    after = split.after.movedim(split.dims, list(range(len(split.dims))))
    shape = after.shape[: len(split.dims)]
    flat = after.reshape(*shape, -1)[..., 0].reshape(-1).tolist()
    coords = torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(len(flat), -1)
    return {e: tuple(c) for e, c in zip(flat, coords.tolist(), strict=True)}


def _merge_columns(tr: TraceState, after: torch.Tensor, dims: list[int]) -> None:
    """Column ``j`` of every row is one unit (the code recomputes the columns from the count)."""
    grid = after.movedim(dims, list(range(len(dims)))).reshape(-1, after.shape[dims[-1]])
    for row in grid[1:]:
        tr.union(grid[0], row)


def _join_parts(
    tr: TraceState, roots: torch.Tensor, lab: torch.Tensor, dim: int, whole: set
) -> bool:
    """One head count over several parts' whole heads: position ``h`` of each is one head.

    CaiT's talking heads (``reshape(B, N, 3, self.num_heads, C // self.num_heads)``): q's and
    k's heads meet before ``proj_l``, v's heads the map after ``proj_w``, so they are separate
    units, but the one count keeps them equal. Returns whether anything was merged.
    """
    slices = []
    for k in range(lab.shape[dim]):
        found = torch.unique(roots[lab.select(dim, k).reshape(-1)])
        slices.append(found[found != UNTRACKED].tolist())
    units = [r for found in slices for r in found]
    if len(units) != len(set(units)) or not set(units) <= whole:
        return False  # a unit across positions (the head size's dimension), or not heads
    joined = False
    for found in slices:
        if len(found) > 1:
            tr.sets.union_pairs((found[0], r) for r in found[1:])
            joined = True
    return joined


def _sole_units(roots: torch.Tensor, lab: torch.Tensor, dim: int) -> list[int]:
    """Per position along ``dim``: an element of the one unit filling that slice, or untracked.

    Removing that unit is the only way the position goes (and the dimension shrinks).
    """
    out = []
    size = lab.shape[dim]
    for k in range(size):
        plane = lab.select(dim, k).reshape(-1)
        r = roots[plane]
        out.append(int(plane[0]) if bool((r == r[0]).all()) and int(r[0]) != UNTRACKED else 0)
    return out


def _add_count(tr: TraceState, name: str, elements: list[int], head_size: int = 0) -> None:
    known = tr.module_out.get(name)
    if known is not None:
        if len(known) == len(elements):
            tr.sets.union_pairs(zip(known, elements, strict=True))
        if head_size and not tr.leaves[name].head_size:
            tr.leaves[name].head_size = head_size
        return
    tr.module_in[name] = tr.module_out[name] = list(elements)
    tr.leaves[name] = AttrSpec(name.rpartition(".")[2], head_size=head_size)
    tr.order.append(name)
