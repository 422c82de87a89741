"""Tracing, channel rules and the dependency graph."""

from . import channel_mean as channel_mean  # GRN and RMS norms of other libraries, by name
from . import computed as computed  # registers the legacy weight-norm spec with spec_for
from .elements import ElementSets
from .groups import DependencyGraph, Group, Member
from .specs import (
    ChannelParam,
    ConvSpec,
    LayerSpec,
    LinearSpec,
    OpaqueSpec,
    PerChannelSpec,
    register_layer,
    register_leaf,
    spec_for,
)
from .tracer import TraceError, Tracer, trace

__all__ = [
    "ChannelParam",
    "ConvSpec",
    "DependencyGraph",
    "ElementSets",
    "Group",
    "LayerSpec",
    "LinearSpec",
    "Member",
    "OpaqueSpec",
    "PerChannelSpec",
    "TraceError",
    "Tracer",
    "register_layer",
    "register_leaf",
    "spec_for",
    "trace",
]
