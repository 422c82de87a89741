"""Apply a :class:`~filterprune.plan.Plan` to a model in one pass.

Every touched module is checked first and every new tensor computed; only then are they swapped
in, all at once, with Ctrl-C held back meanwhile and the model put back as it was if anything
fails: surgery is all-or-nothing, so a plan that does not fit, an error or an interruption leaves
the model untouched. A tensor several modules share (weight tying) is sliced once and stays
shared. Parameters are replaced by new ``nn.Parameter`` objects (same dtype,
device and ``requires_grad``; ``.grad`` is sliced too): optimizers holding the old parameters must
be rebuilt after surgery.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import torch
from torch import nn

from .._gc import gc_paused
from .._modes import drop_train_caches
from ..graph.specs import LayerSpec, ParamSpec, param_spec, spec_for
from ..plan import Plan, PlanError


def _keep(name: str, total: int, removed: list[int]) -> torch.Tensor:
    """The sorted indices in ``range(total)`` that ``removed`` leaves, as an int64 tensor."""
    mask = torch.ones(total, dtype=torch.bool)
    if removed:
        index = torch.tensor(removed, dtype=torch.long)
        if int(index.min()) < 0 or int(index.max()) >= total:
            raise PlanError(
                f"plan removes channel indices outside 0..{total - 1} from module '{name}'; "
                "the plan was made for a different model"
            )
        mask[index] = False
    return mask.nonzero().flatten()


def _gather(tensor: torch.Tensor, keep: dict[int, torch.Tensor]) -> torch.Tensor:
    """``tensor`` with only the ``keep`` indices along each axis, as a new tensor.

    Two axes 0 and 1 (a conv or linear weight losing inputs and outputs) are gathered in one pass:
    for a large classifier this writes the result once instead of through a half-size temporary.
    """
    if sorted(keep) == [0, 1]:
        return tensor[keep[0][:, None], keep[1][None, :]]
    for axis, index in keep.items():
        tensor = tensor.index_select(axis, index)
    return tensor


def _same_keep(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _sliced(
    module: nn.Module,
    module_name: str,
    name: str,
    keep: dict[int, torch.Tensor],
    made: dict[int, tuple[str, dict[int, torch.Tensor], torch.Tensor]],
) -> torch.Tensor | None:
    """The new tensor for ``module.name``, computed without touching the module.

    ``None`` for a tensor computed from others on every forward (weight norm's ``weight``: the
    spec slices the tensors it is made from). A tensor that several modules hold (weight tying)
    is sliced once, and every holder gets the same new tensor; ``made`` remembers them.
    """
    tensor = getattr(module, name)
    if not isinstance(tensor, nn.Parameter) and name not in module._buffers:
        return None  # computed from other tensors (weight norm's ``weight``): the spec slices those
    earlier = made.get(id(tensor))
    if earlier is not None:
        holder, earlier_keep, new = earlier
        if not _same_keep(earlier_keep, keep):
            raise PlanError(
                f"plan removes different channels from '{module_name}.{name}' and '{holder}', "
                "which share one tensor (weight tying); the plan was made for a different model"
            )
        return new
    index = {a: k.to(tensor.device) for a, k in keep.items()}
    with torch.no_grad():  # gathering copies: the result shares no memory with the input
        data = _gather(tensor.detach(), index)
    if isinstance(tensor, nn.Parameter):
        new = nn.Parameter(data, requires_grad=tensor.requires_grad)
        if tensor.grad is not None:
            new.grad = _gather(tensor.grad, index)
    else:
        new = data
    made[id(tensor)] = (f"{module_name}.{name}", keep, new)
    return new


def _assign(module: nn.Module, name: str, new: torch.Tensor) -> None:
    if isinstance(new, nn.Parameter):
        setattr(module, name, new)
    else:
        module._buffers[name] = new


def _snapshot(module: nn.Module) -> tuple[nn.Module, dict, dict, dict]:
    """What surgery may change on ``module``: its attributes, parameters and buffers."""
    return module, dict(module.__dict__), dict(module._parameters), dict(module._buffers)


def _restore(snapshot: tuple[nn.Module, dict, dict, dict]) -> None:
    module, attributes, parameters, buffers = snapshot
    module.__dict__.clear()
    module.__dict__.update(attributes)
    module.__dict__["_parameters"] = parameters
    module.__dict__["_buffers"] = buffers


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) for the block and raise it after; other threads: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda *args: received.append(args))
    except ValueError:  # signals cannot be handled here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if callable(previous):
            previous(*received[0])
        raise KeyboardInterrupt


def _check(name: str, module: nn.Module, spec: LayerSpec | None, plan: Plan) -> tuple[int, int]:
    if spec is None or spec.kind == "opaque":
        raise PlanError(
            f"plan names module '{name}' ({type(module).__name__}), which filterprune cannot "
            "slice; register its type with filterprune.register_layer"
        )
    n_in, n_out = spec.channels(module)
    expected = plan.channels.get(name)
    if expected is not None and [n_in, n_out] != list(expected):
        raise PlanError(
            f"plan does not fit module '{name}': it expects {expected[0]} input and "
            f"{expected[1]} output channels, the model has {n_in} and {n_out}. "
            "Apply plans in the order they were made, to the model they were made for."
        )
    return n_in, n_out


@gc_paused()
def apply_plan(model: nn.Module, plan: Plan) -> nn.Module:
    """Remove the channels named by ``plan`` from ``model``, in place, and return ``model``.

    Args:
        model: The model the plan was made for (or a freshly built copy of its architecture).
        plan: Which output/input channels to remove from which modules.

    Raises:
        PlanError: If a module is missing or its channel counts do not match the plan.
    """
    modules = dict(model.named_modules())
    names = list(dict.fromkeys([*plan.removed_outputs, *plan.removed_inputs]))
    work = []
    for name in names:
        module = modules.get(name)
        spec = spec_for(module) if module is not None else None
        if module is None:
            # a parameter pruned with channels (a layer scale, a position table) or a count
            counts = plan.channels.get(name)
            found = param_spec(model, name, counts[1] if counts else None)
            if found is None:
                raise PlanError(f"plan names module '{name}', which the model does not have")
            module, spec = found
        n_in, n_out = _check(name, module, spec, plan)
        removed_out = plan.removed_outputs.get(name, [])
        removed_in = plan.removed_inputs.get(name, [])
        if spec.kind == "perchannel":
            removed_in = removed_out
        keep_out, keep_in = _keep(name, n_out, removed_out), _keep(name, n_in, removed_in)
        if not len(keep_out) or not len(keep_in):
            raise PlanError(f"plan would leave module '{name}' with no channels")
        groups, columns = _grouping(name, module, spec, n_in, n_out, removed_in, removed_out)
        work.append((name, module, spec, keep_in, keep_out, n_in, n_out, groups, columns))
    # 1. every new tensor, computed while the model is untouched (an error or Ctrl-C here
    #    leaves it as it was)
    changes: list[tuple[nn.Module, str, torch.Tensor]] = []
    made: dict[int, tuple[str, dict[int, torch.Tensor], torch.Tensor]] = {}
    for name, module, spec, keep_in, keep_out, n_in, n_out, _groups, columns in work:
        cuts: dict[str, dict[int, torch.Tensor]] = {}
        if len(keep_out) < n_out:
            for p in spec.out_params(module):
                cuts.setdefault(p.name, {})[p.axis] = keep_out
        if len(keep_in) < n_in:
            for p in spec.in_params(module):
                cuts.setdefault(p.name, {})[p.axis] = keep_in
        if columns is not None and len(columns) < module.weight.shape[1]:
            cuts.setdefault("weight", {})[1] = columns  # the kept input column of every group
        for param, keep in cuts.items():
            new = _sliced(module, name, param, keep, made)
            if new is not None:
                changes.append((module, param, new))
    # 2. all of them swapped in at once: the model is either wholly pruned or unchanged
    touched = list({id(m): m for _, m, *_ in work}.values())
    snapshots = [_snapshot(m) for m in touched]
    with _interrupts_deferred():
        try:
            for module, param, new in changes:
                _assign(module, param, new)
            for _name, module, spec, keep_in, keep_out, _n_in, n_out, groups, _ in work:
                spec.resize(module, len(keep_in), len(keep_out))
                if n_out != len(keep_out):
                    spec.rescale(module, n_out, len(keep_out))
                if isinstance(spec, ParamSpec) and n_out != len(keep_out):
                    _follow_shape_attributes(module, n_out, len(keep_out))
                if groups is not None:
                    setattr(module, spec.groups_attr(module), groups)
        except BaseException:
            for snapshot in snapshots:
                _restore(snapshot)
            raise
    drop_train_caches(model)  # an attention bias cached for eval has the old head count
    return model


def _follow_shape_attributes(module: nn.Module, before: int, after: int) -> None:
    """A shape its owner keeps for a parameter it prunes follows the parameter's channel count.

    timm's ``Scale`` keeps ``self.shape = (dim, 1, 1)`` for ``self.scale.view(self.shape)``;
    its relative-position bias keeps ``bias_shape = (N, N, num_heads)`` for its table's view.
    A tuple of integers holding the old count once gets the new one; the probe checks it.
    """
    for key, value in list(vars(module).items()):
        if key.startswith("_") or not isinstance(value, tuple) or value.count(before) != 1:
            continue
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            setattr(module, key, tuple(after if v == before else v for v in value))


def _grouping(
    name: str,
    module: nn.Module,
    spec: LayerSpec,
    n_in: int,
    n_out: int,
    removed_in: list,
    removed_out: list,
) -> tuple[int | None, torch.Tensor | None]:
    """The group count after the removal, and the kept in-group input columns of a conv.

    ``(None, None)`` for a layer without groups; the columns are ``None`` when whole groups go
    (or nothing is removed inside them). Raises if the removal is neither whole groups nor the
    same input columns and as many outputs inside every group.
    """
    attr = spec.groups_attr(module)
    if attr is None:
        return None, None
    groups = getattr(module, attr)
    if groups == 1 or not (removed_in or removed_out):
        return groups, None
    per_in, per_out = n_in // groups, n_out // groups
    cols_in = [{i - g * per_in for i in removed_in if i // per_in == g} for g in range(groups)]
    cols_out = [{i - g * per_out for i in removed_out if i // per_out == g} for g in range(groups)]
    whole = all(
        (len(ci) == per_in) == (len(co) == per_out) and len(ci) in (0, per_in)
        for ci, co in zip(cols_in, cols_out, strict=True)
    )
    if whole:
        return groups - sum(len(c) == per_out for c in cols_out), None
    same_in = all(c == cols_in[0] for c in cols_in)
    same_out = all(len(c) == len(cols_out[0]) for c in cols_out)
    if not (same_in and same_out) or len(cols_in[0]) >= per_in or len(cols_out[0]) >= per_out:
        raise PlanError(
            f"plan removes channels of grouped layer '{name}' ({groups} groups) unevenly: it must "
            "remove whole groups, or the same number of channels inside every group"
        )
    if spec.kind == "perchannel":
        return groups, None  # its tensors are sliced per channel; the group count stays (GroupNorm)
    return groups, torch.tensor([j for j in range(per_in) if j not in cols_in[0]], dtype=torch.long)
