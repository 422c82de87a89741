"""Wrappers around the user's module: find it inside DDP/FSDP/compile, wrap it in DDP again."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..errors import SetupError
from .process import is_distributed

# Wrappers whose ``.module`` is the user's model, by class name (no optional imports needed).
_MODULE_WRAPPERS = ("FullyShardedDataParallel", "DeepSpeedEngine")
# DDP constructor arguments that prune_distributed copies from the old wrapper to the new one.
_COPIED_DDP_ARGS = (
    "device_ids",
    "output_device",
    "dim",
    "process_group",
    "broadcast_buffers",  # torch < 2.13; later versions name it forward_sync_buffers
    "forward_sync_buffers",
    "find_unused_parameters",
    "gradient_as_bucket_view",
    "static_graph",
    "mixed_precision",
)


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DDP, ``DataParallel``, FSDP, DeepSpeed or ``torch.compile``.

    Wrappers nest (``torch.compile(DDP(model))``); all layers are removed. A plain module is
    returned as is.
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) or (
            type(model).__name__ in _MODULE_WRAPPERS
            and isinstance(getattr(model, "module", None), nn.Module)
        ):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def ddp_kwargs_of(ddp: nn.parallel.DistributedDataParallel) -> dict[str, Any]:
    """Constructor arguments of an existing DDP wrapper, to build an equal one after surgery.

    Copies ``device_ids``, ``output_device``, ``dim``, ``process_group``, buffer syncing,
    ``find_unused_parameters``, ``gradient_as_bucket_view``, ``static_graph`` and
    ``mixed_precision`` where this torch version has them. Not copied: bucket sizes, and
    communication hooks (register those again on the new wrapper).
    """
    accepted = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    kwargs = {
        name: getattr(ddp, name)
        for name in _COPIED_DDP_ARGS
        if name in accepted and hasattr(ddp, name)
    }
    if "forward_sync_buffers" in kwargs:  # the newer name; passing both warns
        kwargs.pop("broadcast_buffers", None)
    if kwargs.get("mixed_precision") is None:
        kwargs.pop("mixed_precision", None)
    return kwargs


def _default_ddp_kwargs(module: nn.Module) -> dict[str, Any]:
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    return {"device_ids": [device.index]} if device.type == "cuda" else {}


def rewrap_ddp(module: nn.Module, **ddp_kwargs: Any) -> nn.parallel.DistributedDataParallel:
    """Wrap a (pruned) module in a new ``DistributedDataParallel``.

    Call this after every removal: surgery replaces parameters with new tensors, so the old
    wrapper would silently stop averaging their gradients. Rebuild the optimizer (and LR scheduler)
    from the new wrapper's parameters as well; optimizer state for removed channels is gone.
    DDP broadcasts rank 0's parameters and buffers and checks that every rank's parameter shapes
    agree when it is built, so all ranks must call this together.

    Args:
        module: The unwrapped, pruned module (already on its device).
        **ddp_kwargs: ``DistributedDataParallel`` arguments (``device_ids`` defaults to the
            module's CUDA device, or none on CPU); see :func:`ddp_kwargs_of`.
    """
    if not is_distributed():
        raise SetupError(
            "rewrap_ddp needs an initialised process group (torch.distributed.init_process_group, "
            "or launch with torchrun); without one, use the unwrapped module directly"
        )
    module = unwrap(module)
    kwargs = {**_default_ddp_kwargs(module), **ddp_kwargs}
    return nn.parallel.DistributedDataParallel(module, **kwargs)


def refuse_sharded(model: nn.Module, module: nn.Module) -> None:
    """FSDP (1: flat parameters; 2: DTensor shards) holds no whole weights to cut channels from."""
    sharded = any(
        type(m).__name__ == "FullyShardedDataParallel" for m in (model, *module.modules())
    )
    if not sharded:
        try:
            from torch.distributed.tensor import DTensor
        except ImportError:  # torch built without distributed
            DTensor = None
        sharded = DTensor is not None and any(isinstance(p, DTensor) for p in module.parameters())
    if sharded:
        raise TypeError(
            f"{type(model).__name__}: FSDP shards parameters, and channel surgery needs whole "
            "tensors; prune an unsharded copy (full state dict) and shard it again, or use DDP"
        )
