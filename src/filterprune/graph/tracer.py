"""Concrete tracing: run the model once on example inputs and label every channel.

The tracer is a :class:`torch.overrides.TorchFunctionMode` plus forward hooks. It sees every torch
function, tensor method and leaf module call that actually runs, with real tensors, so Python
control flow on shapes needs no special care (see docs/design.md for why this beats symbolic
tracing and ``torch.export`` here). For each op a rule in :mod:`.rules` maps the input label
tensors to the output label tensors, merging or freezing channel elements as the op requires.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.autograd.function import BackwardCFunction
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from .._copy import deepcopy_module
from .._modes import drop_train_caches, restore_training, training_flags
from ..errors import ConfigError, FilterpruneError
from . import labels as L
from . import rules
from .elements import UNTRACKED, ElementSets
from .heads import HEADS, HeadBook
from .rules.spatial import META_NORMS, META_SHORTCUTS
from .specs import LayerSpec, OpaqueSpec, registered_spec, spec_for

# With the separator: ``.../site-packages/torch`` must not hide ``.../site-packages/torchvision``.
_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_OWN_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep
_OWN_MODELS = os.path.join(_OWN_DIR, "models") + os.sep  # the zoo is model code, not machinery


def _machinery(path: str) -> bool:
    """Whether ``path`` is torch's or filterprune's own code (not the model's, built-in zoo
    included), which a source line in a freeze reason must skip."""
    return path.startswith(_TORCH_DIR) or (
        path.startswith(_OWN_DIR) and not path.startswith(_OWN_MODELS)
    )


# Calls that never produce activations; skipped without bookkeeping.
_PASSIVE = {
    "size", "dim", "numel", "is_contiguous", "data_ptr", "element_size", "stride", "storage_offset",
    "is_floating_point", "is_complex", "item", "tolist", "__len__", "__bool__", "__format__",
    "__repr__", "__hash__", "__eq__", "requires_grad_", "retain_grad", "register_hook", "__iter__",
    "nelement", "ndimension", "get_device", "untyped_storage", "is_nonzero",
}  # fmt: skip


# Reads that hand a size or a value to the model's Python code (which the trace does not see).
_SHAPE_READS = {
    "size", "attr:shape", "numel", "nelement", "__len__", "item", "tolist", "__bool__",
    "is_nonzero", "__iter__", "__format__",
}  # fmt: skip


# How grouped convs and GroupNorm lose channels: "within" every group (the same number from each;
# the group count stays) or "whole" groups. Depthwise convs always lose whole groups.
GROUPED = ("within", "whole")


class TraceError(FilterpruneError, RuntimeError):
    """The model could not be run under the tracer."""


@dataclass
class OpRecord:
    """One traced op: its name, where it was called, and the labels of its tensor outputs."""

    index: int
    name: str
    where: str
    module: str
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    in_ids: list[int] = field(default_factory=list)
    out_ids: list[int] = field(default_factory=list)
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)  # leaf modules only


@dataclass
class LeafCall:
    name: str
    spec: LayerSpec


class Tracer(TorchFunctionMode):
    """Records channel labels for one forward pass. Use :func:`trace` rather than this class."""

    def __init__(
        self,
        model: nn.Module,
        *,
        seed_outputs: dict[str, list[int]] | None = None,
        grouped: str = "within",
        heads: str = "whole",
    ):
        super().__init__()
        if grouped not in GROUPED:
            raise ConfigError(f"grouped must be one of {', '.join(GROUPED)}, got {grouped!r}")
        if heads not in HEADS:
            raise ConfigError(f"heads must be one of {', '.join(HEADS)}, got {heads!r}")
        self.model = model
        self.grouped = grouped
        self.heads = HeadBook(heads)
        self.sets = ElementSets()
        self.module_in: dict[str, list[int]] = {}
        self.module_out: dict[str, list[int]] = {}
        self.leaves: dict[str, LayerSpec] = {}
        self.order: list[str] = []
        self.ops: list[OpRecord] = []
        self.output_labels: list[torch.Tensor] = []
        self.seed_outputs = seed_outputs or {}
        self._labels: dict[int, torch.Tensor] = {}
        self._alive: list[Any] = []
        self._known_grad_fns: set[int] = set()
        self._labels_by_grad_fn: dict[int, torch.Tensor] = {}
        self._busy = False
        self._leaf_depth = 0
        self._module_stack: list[str] = []
        self.current_op: OpRecord | None = None
        self.on_meta = False  # traced on a weightless copy (see :func:`trace`)
        self.read_shapes = False  # the model's own code read a size or value (see _SHAPE_READS)
        # (module, index of the next op, labels) of every tensor with channels whose size the
        # model's code read: the probe's second suspect when an op's fixed count is not its own
        self.size_reads: list[tuple[str, int, torch.Tensor]] = []
        self.params: dict[int, str] = {}  # id -> name of non-leaf parameters and buffers
        # id of a view of such a parameter (``gamma.reshape(1, -1, 1, 1)``) -> the stored
        # tensor's channel axis; its name is in ``params`` too
        self.param_axes: dict[int, int] = {}
        # id of a tensor gathered or reshaped from one (a relative-position table) -> for each of
        # its dimensions, the stored axis it is, or -1
        self.param_origin: dict[int, tuple] = {}
        # id of a 1-D concatenation of such tensors (a qkv bias) -> (name or None, start, length)
        self.param_pieces: dict[int, list] = {}

    # ----- labels -------------------------------------------------------------------------
    def label(self, t: torch.Tensor) -> torch.Tensor:
        """The compressed label tensor of ``t`` (untracked if ``t`` was never produced here)."""
        fn = t.grad_fn
        if isinstance(fn, BackwardCFunction) and id(fn) not in self._known_grad_fns:
            self._custom_function(t, fn)
        lab = self._labels.get(id(t))
        if lab is None or lab.dim() != t.dim():
            return L.untracked(t.dim())
        return lab

    def set_label(self, t: torch.Tensor, lab: torch.Tensor) -> None:
        lab = L.compress(L.align(lab, t.dim()) if lab.dim() < t.dim() else lab)
        assert lab.dim() == t.dim(), (lab.shape, t.shape)
        self._labels[id(t)] = lab
        self._alive.append(t)
        if t.grad_fn is not None:
            self._known_grad_fns.add(id(t.grad_fn))
            self._labels_by_grad_fn[id(t.grad_fn)] = lab
        if self.current_op is not None:
            self.current_op.outputs.append(lab)

    def relabel(self, t: torch.Tensor, lab: torch.Tensor) -> None:
        """Label an input tensor anew (a parameter joining the channels), recording no output."""
        self._labels[id(t)] = L.compress(lab)
        self._alive.append(t)

    def freeze(self, lab: torch.Tensor, reason: str) -> None:
        for e in torch.unique(lab).tolist():
            self.sets.freeze(e, reason)

    def union(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Merge the elements at equal positions of two broadcastable label tensors."""
        a, b = torch.broadcast_tensors(a, b)
        pairs = torch.stack([a.reshape(-1), b.reshape(-1)], 1)
        pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & (pairs != UNTRACKED).all(1)]
        n = len(self.sets)
        keys = torch.unique(pairs[:, 0] * n + pairs[:, 1])  # 1-D unique: far cheaper than dim=0
        self.sets.union_pairs(zip((keys // n).tolist(), (keys % n).tolist(), strict=True))

    def param_elements(self, name: str, elems: list[int], axis: int) -> list[int]:
        """The channel elements of parameter ``name`` (a layer scale), first seen as ``elems``.

        The parameter becomes a per-channel member of the graph (see ``ParamSpec``); used again
        (a shared scale), its channels are merged with the new ones.
        """
        from .specs import ParamSpec

        known = self.module_out.get(name)
        if known is not None:
            if len(known) == len(elems):
                self.sets.union_pairs(zip(known, elems, strict=True))
            return known
        self.module_in[name] = self.module_out[name] = list(elems)
        self.leaves[name] = ParamSpec(name.rpartition(".")[2], axis)
        self.order.append(name)
        return self.module_out[name]

    def _custom_function(self, t: torch.Tensor, fn: BackwardCFunction) -> None:
        """A custom ``autograd.Function`` ran: its inside is unknown, so freeze what it touched."""
        self._known_grad_fns.add(id(fn))
        cls = getattr(fn, "_forward_cls", type(fn))
        reason = self.reason(
            f"custom autograd.Function {cls.__name__}", "its channel mapping is unknown"
        )
        for next_fn, _ in fn.next_functions:
            lab = self._labels_by_grad_fn.get(id(next_fn)) if next_fn is not None else None
            if lab is not None:
                self.freeze(lab, reason)
        lab = self._labels.get(id(t))
        if lab is not None:
            self.freeze(lab, reason)
        self._labels[id(t)] = L.untracked(t.dim())

    def _note_size_read(self, args: tuple) -> None:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None or self._busy or self._leaf_depth:
            return
        lab = self._labels.get(id(x))
        if lab is not None and L.varying_dims(lab):
            self.size_reads.append((self.current_module(), len(self.ops), lab))

    # ----- context ------------------------------------------------------------------------
    def where(self) -> str:
        frame = sys._getframe(1)
        while frame is not None:
            path = frame.f_code.co_filename
            if not _machinery(path):
                return f"{path}:{frame.f_lineno}"
            frame = frame.f_back
        return "<unknown>"

    def current_module(self) -> str:
        """The innermost module whose ``forward`` is running (``""`` at the top level)."""
        return self._module_stack[-1] if self._module_stack else ""

    def reason(self, what: str, why: str) -> str:
        module = self._module_stack[-1] if self._module_stack else ""
        inside = f" in module '{module}'" if module else ""
        return f"{what}{inside} at {self.where()}: {why}"

    # ----- torch function interception ------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", None) or repr(func)
        if self._busy or self._leaf_depth:
            fast = META_NORMS[name](args, kwargs, attach=False) if name in META_NORMS else None
            return func(*args, **kwargs) if fast is None else fast
        if name == "__get__":
            name = "attr:" + getattr(getattr(func, "__self__", None), "__name__", "?")
        if name in _SHAPE_READS:
            self.read_shapes = True  # Python code saw a size: it may branch or compute on it
            self._note_size_read(args)
        if name in _PASSIVE:
            return func(*args, **kwargs)
        module = self._module_stack[-1] if self._module_stack else ""
        record = OpRecord(len(self.ops), name, self.where(), module)
        self.current_op = record
        out = META_SHORTCUTS[name](args, kwargs) if name in META_SHORTCUTS else None
        if out is None:
            out = func(*args, **kwargs)
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs and name == "__setitem__":
            self._busy = True
            try:
                rules.setitem(self, args)
            finally:
                self._busy = False
        if not outs:
            self.current_op = None
            return out
        self.ops.append(record)
        self._busy = True
        try:
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
            record.inputs = [self.label(t) for t in tensors]
            record.in_ids = [id(t) for t in tensors]
            record.out_ids = [id(t) for t in outs]
            self._alive.append(tensors)
            rules.apply_rule(self, name, func, args, kwargs, out)
        finally:
            self._busy = False
        self.current_op = None  # kept when the rule fails: the TraceError names the op
        return out

    # ----- module hooks ---------------------------------------------------------------------
    def _pre_hook(self, name: str, spec: LayerSpec | None):
        def hook(module, args):
            if spec is not None:
                self._leaf_depth += 1
            self._module_stack.append(name)

        return hook

    def _post_hook(self, name: str, spec: LayerSpec | None):
        def hook(module, args, output):
            self._module_stack.pop()
            if spec is None:
                return
            self._leaf_depth -= 1
            if self._leaf_depth == 0 and not self._busy:
                self._busy = True
                try:  # label bookkeeping: not traced, and faster without the mode's dispatch
                    record = OpRecord(len(self.ops), f"module:{name}", self.where(), name)
                    tensors = [t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)]
                    outs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
                    record.inputs = [self.label(t) for t in tensors]  # the probe freezes these
                    record.in_ids = [id(t) for t in tensors]
                    record.out_ids = [id(t) for t in outs]
                    record.in_shapes = [tuple(t.shape) for t in tensors]
                    self._alive.append((tensors, outs))
                    self.current_op = record
                    self.ops.append(record)
                    with torch._C.DisableTorchFunction():
                        rules.apply_leaf(self, name, module, spec, args, output)
                finally:
                    self._busy = False
                self.current_op = None

        return hook

    def run(self, example_inputs: tuple[Any, ...], leaf_types: tuple[type, ...] = ()) -> Any:
        handles = []
        leaf_tensors: set[int] = set()
        for name, module in self.model.named_modules():
            spec = spec_for(module)
            if spec is None and leaf_types and isinstance(module, leaf_types):
                spec = OpaqueSpec()
            if spec is not None:
                self.leaves[name] = spec
                leaf_tensors.update(id(t) for t in (*module.parameters(), *module.buffers()))
            handles.append(module.register_forward_pre_hook(self._pre_hook(name, spec)))
            handles.append(module.register_forward_hook(self._post_hook(name, spec)))
        for pname, t in (*self.model.named_parameters(), *self.model.named_buffers()):
            if id(t) not in leaf_tensors:
                self.params[id(t)] = pname
        try:
            with torch.enable_grad(), self:
                out = self.model(*example_inputs)
        finally:
            for h in handles:
                h.remove()
        self.heads.finish(self)
        producers = {i: r for r in self.ops for i in r.out_ids}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                lab = self.label(t)
                self.output_labels.append(lab)
                record = producers.get(id(t))
                made = ""
                if record is not None:
                    op = record.name.removeprefix("module:")
                    made = f" (made by {'module' if op != record.name else 'op'} '{op}'"
                    made += f" at {record.where})" if record.where else ")"
                self.freeze(lab, f"model output{made}: its channels are what the model returns")
        return out


def prepare_inputs(example_inputs: Any) -> tuple[Any, ...]:
    """Normalise example inputs to a tuple; float tensors are detached and require grad."""
    if isinstance(example_inputs, torch.Tensor) or not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)

    def prep(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            # not a leaf, so a model may modify its input in place (e.g. ``x.sub_(mean)``)
            return x.detach().requires_grad_(True).clone()
        return x

    return tuple(prep(x) for x in example_inputs)


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters and buffers live on the ``meta`` device.

    Shapes, dtypes and module attributes are kept; no weight is copied, so copying and running
    it cost next to nothing whatever the model's size. Tied weights stay tied.
    """
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        if id(t) not in memo:
            empty = torch.empty_like(t, device="meta")
            memo[id(t)] = (
                nn.Parameter(empty, requires_grad=t.requires_grad)
                if isinstance(t, nn.Parameter)
                else empty
            )
    twin = deepcopy_module(model, memo, detached=lambda t: torch.empty_like(t, device="meta"))
    for module in twin.modules():
        spec = registered_spec(type(module))  # exactly a registered type, not a subclass
        forward = spec.meta_forward(module) if spec is not None else None
        if forward is not None:
            module.forward = forward
    return twin


def meta_inputs(example_inputs: Any) -> Any:
    """``example_inputs`` with every tensor moved to the ``meta`` device."""
    return tree_map(
        lambda x: x.to("meta") if isinstance(x, torch.Tensor) else x,
        example_inputs,
    )


def _trace_on_meta(
    model: nn.Module,
    example_inputs: Any,
    leaf_types: tuple[type, ...],
    seed_outputs: dict[str, list[int]] | None,
    grouped: str,
    heads: str = "whole",
) -> Tracer | None:
    try:
        twin = meta_copy(model)
        inputs = prepare_inputs(meta_inputs(example_inputs))
    except Exception:  # noqa: BLE001 - not copyable: trace the model itself
        return None
    drop_train_caches(twin)  # a cached eval tensor would hide the parameter it is made from
    twin.eval()
    tracer = Tracer(twin, seed_outputs=seed_outputs, grouped=grouped, heads=heads)
    try:
        tracer.run(inputs, leaf_types)
    except Exception:  # noqa: BLE001 - it reads values (``.item()``, masks...): trace for real
        return None
    tracer.model = model
    tracer.on_meta = True
    return tracer


def trace(
    model: nn.Module,
    example_inputs: Any,
    *,
    leaf_types: tuple[type, ...] = (),
    seed_outputs: dict[str, list[int]] | None = None,
    meta: bool = True,
    grouped: str = "within",
    heads: str = "whole",
) -> Tracer:
    """Run ``model`` once under the tracer (in eval mode, restoring the mode afterwards).

    With ``meta`` (the default) the model is first run as a weightless copy on the ``meta``
    device: shapes, and so Python control flow on shapes, are the real ones, but no arithmetic is
    done and the model itself is not touched. A forward that needs values (``.item()``, a
    boolean mask, data-dependent branches) fails there and is then traced for real.
    ``grouped`` says how grouped convs and GroupNorm lose channels (see :data:`GROUPED`),
    ``heads`` how attention heads do (see :mod:`.heads`).
    """
    if meta:
        tracer = _trace_on_meta(model, example_inputs, leaf_types, seed_outputs, grouped, heads)
        if tracer is not None:
            return tracer
    was_training = training_flags(model)
    drop_train_caches(model)
    model.eval()
    tracer = Tracer(model, seed_outputs=seed_outputs, grouped=grouped, heads=heads)
    inputs = prepare_inputs(example_inputs)
    try:
        tracer.run(inputs, leaf_types)
    except Exception as exc:
        raise TraceError(_trace_failure(model, tracer, inputs, exc)) from exc
    finally:
        restore_training(was_training)
    return tracer


def _describe_inputs(inputs: tuple[Any, ...]) -> str:
    return ", ".join(
        f"tensor {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        for x in inputs
    )


def _trace_failure(
    model: nn.Module, tracer: Tracer, inputs: tuple[Any, ...], exc: Exception
) -> str:
    """One paragraph: which op and module failed, on which inputs, and the way out."""
    op = tracer.current_op
    module = op.module if op is not None and op.module else ""
    if not module and tracer._module_stack:
        module = tracer._module_stack[-1]
    kind = type(model.get_submodule(module)).__name__ if module else ""
    where = [f"op '{op.name}'"] if op is not None else []
    if module:
        where.append(f"module '{module}' ({kind})")
    at = f" in {' of '.join(where)}" if where else ""
    error = " ".join(str(exc).split()).rstrip(".")
    if module in tracer.leaves:  # a leaf already: the module itself rejects the inputs
        fix = "pass example inputs the model accepts, e.g. one batch of its training data"
    elif module:
        fix = (
            "if the model runs on these inputs outside filterprune, trace that module as an "
            f"opaque leaf: filterprune.register_leaf({kind}) or leaf_types=({kind},) (its "
            "channels are then kept)"
        )
    else:
        fix = (
            "if the model runs on these inputs outside filterprune, move the failing code into "
            "a module and register it with filterprune.register_leaf"
        )
    return (
        f"running {type(model).__name__} on the example inputs ({_describe_inputs(inputs)}) "
        f"failed{at}: {error}. Check that the example inputs have the shape and channel count "
        f"the model expects; {fix}."
    )
