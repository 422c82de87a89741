"""Per-layer channel knowledge: the one place that says which axis of which tensor is a channel.

A :class:`LayerSpec` tells the tracer how a leaf module maps input channels to output channels
and tells the surgeon which parameters and buffers to slice along which axis. Criteria read the
same specs to find a filter's weights. Specs are looked up by module type (through the MRO), so
subclasses of ``nn.Conv2d`` and friends are handled; custom modules can be registered with
:func:`register_layer` or :func:`register_leaf`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm

from .._registry import Registry
from ..errors import ConfigError, UnknownNameError
from .elements import ElementSets

Kind = Literal["mixing", "perchannel", "opaque"]


@dataclass(frozen=True)
class ChannelParam:
    """A parameter or buffer of a module whose ``axis`` indexes channels."""

    name: str
    axis: int


class LayerSpec:
    """Channel behaviour of one leaf module type.

    Attributes:
        kind: ``"mixing"`` (output channels are new: conv, linear), ``"perchannel"`` (output
            channel ``i`` is input channel ``i``: norms, PReLU) or ``"opaque"`` (unknown: every
            channel it touches is frozen).
        in_dim: The activation dimension holding input channels (1 for NCHW, -1 for features).
        out_dim: The activation dimension holding output channels.
    """

    kind: Kind = "opaque"
    in_dim: int = 1
    out_dim: int = 1

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        """Tensors sliced when output channels are removed."""
        return []

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        """Tensors sliced when input channels are removed (mixing layers only)."""
        return []

    def channels(self, module: nn.Module) -> tuple[int, int]:
        """``(in_channels, out_channels)`` of the module as it is now."""
        raise NotImplementedError

    def couple(
        self, module: nn.Module, in_elems: list[int], out_elems: list[int], sets: ElementSets
    ) -> None:
        """Merge elements that this layer forces to be removed together (groups, GroupNorm)."""

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        """Update the module's attributes after its tensors were sliced to the new counts."""

    def rescale(self, module: nn.Module, before: int, after: int) -> None:
        """Keep the module exact after its channels went from ``before`` to ``after`` (a norm
        over a channel mean, :mod:`.channel_mean`); most layers have nothing to do."""

    def groups_attr(self, module: nn.Module) -> str | None:
        """The attribute holding the module's group count (conv ``groups``), or ``None``.

        A spec naming one is a grouped layer: its :meth:`couple` also takes ``within=`` (remove
        channels inside every group rather than whole groups, the trace's ``grouped``).
        """
        return None

    def for_module(self, module: nn.Module) -> LayerSpec | None:
        """The spec for this very module: ``self``, another spec, or ``None`` to look inside it.

        A registered type may behave differently by configuration (a LayerNorm over several
        dimensions is opaque; a PReLU with one shared slope is element-wise).
        """
        return self

    def meta_forward(self, module: nn.Module) -> Callable[..., torch.Tensor] | None:
        """A cheaper forward for the module on a ``meta`` twin (shapes only), or ``None``.

        Asked only for exactly the registered type, never a subclass, whose forward may do more.
        """
        return None


def _existing(module: nn.Module, names: Sequence[str], axis: int) -> list[ChannelParam]:
    return [ChannelParam(n, axis) for n in names if getattr(module, n, None) is not None]


class ConvSpec(LayerSpec):
    """``nn.ConvNd``: weight ``(out, in/groups, *k)``.

    A grouped conv loses channels inside every group (the same number from each, the group count
    stays) or whole groups, as the trace's ``grouped`` option says; a depthwise conv (one input
    channel per group) always loses whole groups.
    """

    kind: Kind = "mixing"

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return _existing(module, ["weight", "bias"], 0)

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        return [ChannelParam("weight", 1)] if module.groups == 1 else []

    def channels(self, module: nn.Module) -> tuple[int, int]:
        return module.in_channels, module.out_channels

    def couple(self, module, in_elems, out_elems, sets, *, within: bool = False) -> None:
        per_in = len(in_elems) // module.groups
        if within and module.groups > 1 and per_in > 1:
            _couple_columns(module.groups, in_elems, sets)
            _couple_columns(module.groups, out_elems, sets)
        else:
            _couple_groups(module.groups, in_elems, out_elems, sets)

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        if module.groups > 1:
            per_group_in = module.in_channels // module.groups
            module.groups = n_in // per_group_in
        module.in_channels, module.out_channels = n_in, n_out

    def groups_attr(self, module: nn.Module) -> str | None:
        return "groups"


class ConvTransposeSpec(ConvSpec):
    """``nn.ConvTransposeNd``: weight ``(in, out/groups, *k)``."""

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        params = _existing(module, ["bias"], 0)
        if module.groups == 1:
            params.insert(0, ChannelParam("weight", 1))
        return params

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        return [ChannelParam("weight", 0)]

    def couple(self, module, in_elems, out_elems, sets, *, within: bool = False) -> None:
        _couple_groups(module.groups, in_elems, out_elems, sets)  # whole groups only


def _couple_groups(groups: int, in_elems: list[int], out_elems: list[int], sets) -> None:
    """A grouped conv can only lose whole groups: merge each group's input and output channels."""
    if groups == 1:
        return
    per_in, per_out = len(in_elems) // groups, len(out_elems) // groups
    for g in range(groups):
        members = (
            in_elems[g * per_in : (g + 1) * per_in] + out_elems[g * per_out : (g + 1) * per_out]
        )
        for other in members[1:]:
            sets.union(members[0], other)


def _couple_columns(groups: int, elems: list[int], sets) -> None:
    """Within-group removal keeps the group count: channel ``j`` of every group goes together."""
    per = len(elems) // groups
    for j in range(per):
        for g in range(1, groups):
            sets.union(elems[j], elems[g * per + j])


class LinearSpec(LayerSpec):
    """``nn.Linear``: weight ``(out, in)``, features on the last dimension."""

    kind: Kind = "mixing"
    in_dim = -1
    out_dim = -1

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return _existing(module, ["weight", "bias"], 0)

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        return [ChannelParam("weight", 1)]

    def channels(self, module: nn.Module) -> tuple[int, int]:
        return module.in_features, module.out_features

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        module.in_features, module.out_features = n_in, n_out


class PerChannelSpec(LayerSpec):
    """Layers whose output channel ``i`` depends on input channel ``i`` only."""

    kind: Kind = "perchannel"

    def __init__(self, params: Sequence[str], count_attr: str | None, in_dim: int = 1) -> None:
        self.params = tuple(params)
        self.count_attr = count_attr
        self.in_dim = self.out_dim = in_dim

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return _existing(module, self.params, 0)

    def channels(self, module: nn.Module) -> tuple[int, int]:
        n = getattr(module, self.count_attr)
        return n, n

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        if self.count_attr is not None:
            setattr(module, self.count_attr, n_out)


_NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


class GroupNormSpec(PerChannelSpec):
    """``nn.GroupNorm``: loses channels inside every group, or whole groups (``grouped``).

    Removing whole groups leaves the statistics of the others unchanged; removing channels inside
    groups changes them (verify with ``assert_equivalent(..., restrict_norms=True)``).
    """

    def __init__(self) -> None:
        super().__init__(("weight", "bias"), "num_channels")

    def couple(self, module, in_elems, out_elems, sets, *, within: bool = False) -> None:
        per = len(in_elems) // module.num_groups
        if within and per > 1:
            _couple_columns(module.num_groups, in_elems, sets)
            return
        for g in range(module.num_groups):
            for e in in_elems[g * per + 1 : (g + 1) * per]:
                sets.union(in_elems[g * per], e)

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        per = module.num_channels // module.num_groups
        module.num_channels, module.num_groups = n_out, n_out // per

    def groups_attr(self, module: nn.Module) -> str | None:
        return "num_groups"


class LayerNormSpec(PerChannelSpec):
    """``nn.LayerNorm`` over the last dimension only (channels-last blocks).

    Its statistics are taken over the channels, so removing a channel is not exactly the same as
    zeroing it; finetuning absorbs the change. LayerNorm over several dimensions is opaque.
    """

    def __init__(self) -> None:
        super().__init__(("weight", "bias"), None, in_dim=-1)

    def channels(self, module: nn.Module) -> tuple[int, int]:
        n = module.normalized_shape[-1]
        return n, n

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        module.normalized_shape = (n_out,)

    def for_module(self, module: nn.Module) -> LayerSpec | None:
        return self if len(module.normalized_shape) == 1 else OpaqueSpec()


class BatchNormSpec(PerChannelSpec):
    """``nn.BatchNormNd``/``nn.InstanceNormNd``: running statistics sliced with the channels.

    On a ``meta`` twin its forward (a Python decomposition costing about a millisecond a call)
    is replaced by one returning a tensor shaped like its input: the layer is a leaf of the
    trace, so only its output's shape is read.
    """

    def __init__(self) -> None:
        super().__init__(_NORM_TENSORS, "num_features")

    def meta_forward(self, module: nn.Module) -> Callable[..., torch.Tensor] | None:
        forward = module.forward

        def shape_only(x: torch.Tensor) -> torch.Tensor:
            # inputs it would reject go to the real forward, which raises as on the model itself
            if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] == module.num_features:
                module._check_input_dim(x)
                return x.clone()
            return forward(x)

        return shape_only


class PReLUSpec(PerChannelSpec):
    """``nn.PReLU`` with one slope per channel; a single shared slope is element-wise."""

    def __init__(self) -> None:
        super().__init__(("weight",), "num_parameters")

    def for_module(self, module: nn.Module) -> LayerSpec | None:
        return None if module.num_parameters == 1 else self


class OpaqueSpec(LayerSpec):
    """A leaf the engine does not look into: every channel it touches is frozen."""

    kind: Kind = "opaque"

    def channels(self, module: nn.Module) -> tuple[int, int]:
        return 0, 0


class ParamSpec(LayerSpec):
    """A parameter or buffer of a non-leaf module that scales channels element-wise.

    ConvNeXt's layer scale (``gamma * x`` with ``gamma`` of shape ``(C, 1, 1)``) or GRN's
    ``gamma``/``beta`` of shape ``(1, 1, 1, C)``: the tensor has one dimension of size > 1 and it
    meets the activation's channel dimension. It is pruned with those channels. In a graph and a
    plan it is named by its qualified name (``stages.0.blocks.1.gamma``); ``module`` arguments
    are its owning module.
    """

    kind: Kind = "perchannel"

    def __init__(self, attr: str, axis: int) -> None:
        self.attr, self.axis = attr, axis

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return [ChannelParam(self.attr, self.axis)]

    def channels(self, module: nn.Module) -> tuple[int, int]:
        n = getattr(module, self.attr).shape[self.axis]
        return n, n


class AttrSpec(LayerSpec):
    """An integer attribute of a non-leaf module that counts channel positions.

    An attention module's ``num_heads``, ``head_dim`` or ``attn_dim``, read by its ``forward`` in a
    reshape (``qkv.reshape(B, N, 3, self.num_heads, self.head_dim)``): removing whole heads
    lowers ``num_heads``, shrinking every head lowers ``head_dim``. The trace finds the attribute
    from the reshape's sizes (see :mod:`.heads`) and the probe checks it. It holds no tensor;
    surgery sets it to the count left, so a plan applied to a fresh model sets it too. Named by
    its qualified name (``blocks.0.attn.num_heads``), like a :class:`ParamSpec`.
    """

    kind: Kind = "perchannel"

    def __init__(self, attr: str, *, head_size: int = 0) -> None:
        self.attr = attr
        # a head count: the channels of one head as traced (0: a count of channels, not heads)
        self.head_size = head_size

    def channels(self, module: nn.Module) -> tuple[int, int]:
        name, index = _element(self.attr)
        value = getattr(module, name)
        n = int(value if index is None else value[index])
        return n, n

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        name, index = _element(self.attr)
        if index is None:
            setattr(module, name, n_out)
            return
        value = getattr(module, name)  # one element of a tuple or list of sizes
        items = list(value)
        items[index] = n_out
        setattr(module, name, type(value)(items))


def _element(attr: str) -> tuple[str, int | None]:
    """``"split_indexes[2]"`` -> ``("split_indexes", 2)``; a plain name -> ``(name, None)``."""
    if attr.endswith("]") and "[" in attr:
        name, _, index = attr[:-1].partition("[")
        return name, int(index)
    return attr, None


def int_attributes(module: nn.Module) -> dict[str, int]:
    """The module's own integer attributes (not ``bool``), by name."""
    return {
        k: v
        for k, v in vars(module).items()
        if isinstance(v, int) and not isinstance(v, bool) and not k.startswith("_")
    }


def sequence_attributes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    """The module's own tuples and lists of integers (InceptionNeXt's ``split_indexes``)."""
    return {
        k: tuple(v)
        for k, v in vars(module).items()
        if isinstance(v, (tuple, list))
        and v
        and all(isinstance(i, int) and not isinstance(i, bool) for i in v)
        and not k.startswith("_")
    }


def channel_axis(tensor: torch.Tensor, count: int | None = None) -> int | None:
    """The one dimension of ``tensor`` longer than 1, or ``None`` if there is not exactly one.

    With ``count``, the last dimension of that length (a position table ``(1, N, C)`` holds its
    channels on the axis whose length is the channel count a plan names).
    """
    if count is not None:
        dims = [d for d, s in enumerate(tensor.shape) if s == count]
        return dims[-1] if dims else None
    dims = [d for d, s in enumerate(tensor.shape) if s > 1]
    return dims[0] if len(dims) == 1 else None


def param_spec(
    model: nn.Module, name: str, count: int | None = None
) -> tuple[nn.Module, LayerSpec] | None:
    """The owning module and spec of the parameter, buffer or count attribute called ``name``.

    A tensor gets a :class:`ParamSpec` (its channel axis: the one longer than 1, or with
    ``count``, the one of that length), an integer attribute an :class:`AttrSpec`.
    """
    owner_name, _, attr = name.rpartition(".")
    try:
        owner = model.get_submodule(owner_name)
    except AttributeError:
        return None
    if attr in int_attributes(owner):
        return owner, AttrSpec(attr)
    name, index = _element(attr)
    if index is not None and index < len(sequence_attributes(owner).get(name, ())):
        return owner, AttrSpec(attr)
    tensor = getattr(owner, attr, None)
    if not isinstance(tensor, torch.Tensor) or attr in owner._modules:
        return None
    axis = channel_axis(tensor, count)
    return None if axis is None else (owner, ParamSpec(attr, axis))


_REGISTRY: Registry[LayerSpec] = Registry(
    "layer type",
    "layer types",
    register_with="filterprune.register_layer",
    error=UnknownNameError,
    invalid=ConfigError,
    keys=type,
)
#: Qualified class name -> spec, for layers of libraries filterprune does not import (timm's
#: GRN: filled by :mod:`.channel_mean`); a type registered with :func:`register_layer` wins.
NAMED_SPECS: dict[str, LayerSpec] = {}
# Applied to every spec found, with the module: a layer under the legacy weight norm gets a spec
# slicing its stored tensors (added by :mod:`.computed`, which the package imports).
SPEC_WRAPPERS: list[Callable[[LayerSpec, nn.Module], LayerSpec]] = []


def register_layer(
    module_type: type[nn.Module], spec: LayerSpec, *, override: bool = False
) -> None:
    """Register the channel spec of a module type.

    Modules of a registered type are traced as leaves: the tracer does not look inside them.
    A type is registered once: registering it again with another spec raises
    :class:`~filterprune.errors.ConfigError` naming the spec that holds it, unless ``override``
    is true (the new spec replaces the old one, also for torch's own layers).

    Example:
        >>> class Scale(nn.Module):  # y = x * self.gamma, gamma of shape (C,)
        ...     ...
        >>> register_layer(Scale, PerChannelSpec(["gamma"], count_attr="channels"))
    """
    if not isinstance(spec, LayerSpec):
        raise TypeError(f"spec for {module_type.__name__} must be a LayerSpec, got {spec!r}")
    _REGISTRY.add(module_type, spec, override=override)


def register_leaf(
    module_type: type[nn.Module],
    *,
    channel_params: Sequence[str] | None = None,
    count_attr: str | None = None,
    override: bool = False,
) -> None:
    """Trace ``module_type`` as a leaf.

    Args:
        module_type: The custom module class.
        channel_params: If given, the module is per-channel (output channel ``i`` depends only on
            input channel ``i``) and these parameters/buffers have channels on axis 0; pruning
            slices them. If ``None``, the module is opaque: channels it touches are frozen.
        count_attr: Attribute holding the channel count, updated after surgery.
        override: Replace a spec already registered for ``module_type`` (see
            :func:`register_layer`).
    """
    if channel_params is None:
        register_layer(module_type, OpaqueSpec(), override=override)
    else:
        spec = PerChannelSpec(channel_params, count_attr)
        register_layer(module_type, spec, override=override)


def spec_for(module: nn.Module) -> LayerSpec | None:
    """The spec of ``module``, or ``None`` if the tracer should look inside it.

    A subclass of a registered type (``class ScaledStdConv2d(nn.Conv2d)``) gets its base's spec
    wrapped in a :class:`SubclassSpec`, which also slices the subclass's own per-channel tensors.
    """
    for cls in type(module).__mro__:
        spec = _REGISTRY.find(cls)
        if spec is None and NAMED_SPECS:
            spec = NAMED_SPECS.get(f"{cls.__module__}.{cls.__qualname__}")
        if spec is not None:
            spec = spec.for_module(module)
            if spec is None:
                return None
            if cls is not type(module) and spec.kind != "opaque":
                spec = SubclassSpec(spec, module)
            for wrap in SPEC_WRAPPERS:
                spec = wrap(spec, module)
            return spec
    return None


def registered_spec(module_type: type) -> LayerSpec | None:
    """The spec registered for exactly ``module_type`` (not a base class), or ``None``."""
    return _REGISTRY.find(module_type)


def registered_type(module: nn.Module) -> type | None:
    """The registered layer type ``module`` is looked up as (itself or a base class)."""
    return next((cls for cls in type(module).__mro__ if cls in _REGISTRY), None)


class WrapperSpec(LayerSpec):
    """A spec that adds to another one (``base``) and otherwise does what it does."""

    def __init__(self, base: LayerSpec) -> None:
        self.base = base
        self.kind = base.kind
        self.in_dim, self.out_dim = base.in_dim, base.out_dim

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return self.base.out_params(module)

    def in_params(self, module: nn.Module) -> list[ChannelParam]:
        return self.base.in_params(module)

    def channels(self, module: nn.Module) -> tuple[int, int]:
        return self.base.channels(module)

    def couple(self, module, in_elems, out_elems, sets, **options) -> None:
        self.base.couple(module, in_elems, out_elems, sets, **options)

    def resize(self, module: nn.Module, n_in: int, n_out: int) -> None:
        self.base.resize(module, n_in, n_out)

    def rescale(self, module: nn.Module, before: int, after: int) -> None:
        self.base.rescale(module, before, after)

    def groups_attr(self, module: nn.Module) -> str | None:
        return self.base.groups_attr(module)


class SubclassSpec(WrapperSpec):
    """The spec of a registered layer type, for a subclass that may hold tensors of its own.

    A subclass is not its base layer: NFNet's ``ScaledStdConv2d`` keeps a gain of shape
    ``(C_out, 1, 1, 1)`` and passes it to ``F.batch_norm`` over the weight. Every tensor of the
    module that the base spec does not name is looked at: one shaped like a per-filter vector
    (``(C_out,)``, or the weight's rank with ``C_out`` first and ones elsewhere) is sliced with
    the filters; any other tensor with a channel-sized dimension is listed in :attr:`unknown`,
    and the tracer keeps the module's channels with that reason.
    """

    def __init__(self, base: LayerSpec, module: nn.Module) -> None:
        super().__init__(base)
        known = {p.name for p in base.out_params(module) + base.in_params(module)}
        known |= {f"{n}{s}" for n in _weight_norm_names(module) for s in ("_g", "_v")}
        if isinstance(base, PerChannelSpec):
            known |= set(base.params)
        n_in, n_out = base.channels(module)
        weight = getattr(module, "weight", None)
        rank = weight.dim() if isinstance(weight, torch.Tensor) else 1
        self.extra: list[str] = []
        self.unknown: list[str] = []
        tensors = [*module.named_parameters(), *module.named_buffers()]
        for name, tensor in tensors:
            if name in known or tensor.dim() == 0:
                continue
            shape = tuple(tensor.shape)
            per_filter = shape[0] == n_out and all(s == 1 for s in shape[1:])
            if "." not in name and per_filter and tensor.dim() in (1, rank) and n_out > 1:
                self.extra.append(name)
            elif any(s in (n_in, n_out) and s > 1 for s in shape):
                self.unknown.append(f"'{name}' {list(shape)}")

    def out_params(self, module: nn.Module) -> list[ChannelParam]:
        return self.base.out_params(module) + [ChannelParam(n, 0) for n in self.extra]


for _t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_layer(_t, ConvSpec())
for _t in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_layer(_t, ConvTransposeSpec())
register_layer(nn.Linear, LinearSpec())
register_layer(nn.SyncBatchNorm, PerChannelSpec(_NORM_TENSORS, "num_features"))
for _t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
    register_layer(_t, BatchNormSpec())
for _t in (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d):
    register_layer(_t, BatchNormSpec())
register_layer(nn.GroupNorm, GroupNormSpec())
register_layer(nn.LayerNorm, LayerNormSpec())
register_layer(nn.PReLU, PReLUSpec())
for _t in (nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.RNN, nn.Embedding, nn.Bilinear):
    register_layer(_t, OpaqueSpec())

# The layers registered above, as shipped: for these exact types the spec is known to be right.
BUILTIN_SPECS: dict[type, LayerSpec] = dict(_REGISTRY.items())


def is_builtin_layer(module: nn.Module) -> bool:
    """Whether ``module`` is exactly a torch layer type whose shipped spec is still in use.

    A layer with hooks of its own (the legacy ``weight_norm``) is not: it may compute what it
    applies (see :mod:`.computed`).
    """
    spec = BUILTIN_SPECS.get(type(module))
    hooked = module._forward_pre_hooks or module._forward_hooks
    return spec is not None and _REGISTRY.find(type(module)) is spec and not hooked


def weight_norm_hooks(module: nn.Module) -> list[WeightNorm]:
    """The legacy ``torch.nn.utils.weight_norm`` hooks of ``module``."""
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, WeightNorm)]


def _weight_norm_names(module: nn.Module) -> list[str]:
    return [h.name for h in weight_norm_hooks(module)]
