"""The distributed helpers in one process, without a process group: no-ops and plain results."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import filterprune as fp
from filterprune import distributed as fpd
from filterprune.parallel import plans


def _plan(**groups: list[int]) -> fp.Plan:
    return fp.Plan(
        removed_outputs=dict(groups),
        channels={g: [3, 8] for g in groups},
        groups=dict(groups),
    )


def test_queries_are_single_process_defaults():
    assert not fpd.is_distributed()
    assert (fpd.process_index(), fpd.world_size(), fpd.is_main_process()) == (0, 1, True)
    fpd.barrier()  # no-op, must not raise


@pytest.mark.parametrize(
    ("old", "new"), [("rank", "process_index"), ("local_rank", "local_process_index")]
)
def test_the_names_of_0_1_still_work_and_warn(old, new):
    with pytest.warns(DeprecationWarning, match=f"{new}"):
        function = getattr(fpd, old)
    assert function is getattr(fpd, new)
    assert function() == 0


def test_plan_digest_ignores_key_and_index_order_but_not_content():
    a = _plan(x=[1, 3], y=[0])
    b = _plan(y=[0], x=[3, 1])
    assert fpd.plan_digest(a) == fpd.plan_digest(b)
    assert len(fpd.plan_digest(a)) == 64
    assert fpd.plan_digest(a) != fpd.plan_digest(_plan(x=[1, 2], y=[0]))
    c = _plan(x=[1, 3], y=[0])
    c.channels["x"] = [3, 9]  # same removals from a different model
    assert fpd.plan_digest(a) != fpd.plan_digest(c)
    assert fpd.plan_digest(fp.Plan.from_json(a.to_json())) == fpd.plan_digest(a)


def test_check_same_plan_without_a_process_group_returns_the_digest():
    plan = _plan(x=[2])
    assert fpd.check_same_plan(plan, timeout=0.1) == fpd.plan_digest(plan)


def test_mismatch_message_names_ranks_and_first_differing_group():
    summaries = [
        plans._summary(_plan(a=[1], b=[0, 2])),
        plans._summary(_plan(a=[1], b=[0, 2])),
        plans._summary(_plan(a=[1], b=[0, 5])),
    ]
    pattern = r"rank\(s\) \[2\].*'b' \(rank 0 removes 2 channels, rank 2 removes 2 channels, diff"
    with pytest.raises(fpd.DistributedMismatchError, match=pattern) as info:
        plans._raise_on_mismatch(summaries)
    assert (info.value.ranks, info.value.group) == ([2], "b")
    plans._raise_on_mismatch(summaries[:2])  # equal: no error


def test_mismatch_outside_groups_is_reported_by_section():
    other = _plan(a=[1])
    other.channels["a"] = [3, 9]
    summaries = [plans._summary(_plan(a=[1])), plans._summary(other)]
    with pytest.raises(fpd.DistributedMismatchError, match="channels differ") as info:
        plans._raise_on_mismatch(summaries)
    assert info.value.group is None


def test_unwrap_removes_nested_wrappers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    assert fpd.unwrap(model) is model
    assert fpd.unwrap(nn.DataParallel(nn.DataParallel(model))) is model

    class OptimizedModule(nn.Module):  # stands in for torch.compile's wrapper (matched by name)
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self._orig_mod = module

    assert fpd.unwrap(OptimizedModule(nn.DataParallel(model))) is model


def test_seed_sampler_sets_the_epoch_on_samplers_and_loaders():
    data = TensorDataset(torch.arange(8.0))
    sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0)
    assert fpd.seed_sampler(sampler, 3) and sampler.epoch == 3
    loader = DataLoader(data, sampler=sampler, batch_size=2)
    assert fpd.seed_sampler(loader, 5) and sampler.epoch == 5
    assert not fpd.seed_sampler(DataLoader(data, batch_size=2), 1)


def test_main_process_only_runs_on_rank_zero():
    calls = []

    @fpd.main_process_only
    def write(x: int) -> int:
        calls.append(x)
        return x + 1

    assert write(1) == 2 and calls == [1]
    assert write.__name__ == "write"


def test_rewrap_ddp_needs_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        fpd.rewrap_ddp(nn.Conv2d(3, 4, 3))


def test_prune_distributed_without_a_process_group_is_fp_prune():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3))
    reference = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3))
    reference.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 8, 8)
    batches = [(x, torch.randn(4, 4, 4, 4))]
    kwargs = {"amount": 0.5, "criterion": "taylor", "batches": batches, "loss_fn": F.mse_loss}
    pruned, plan = fpd.prune_distributed(nn.DataParallel(model), x[:1], **kwargs)
    assert pruned is model and pruned[0].out_channels == 3
    assert fpd.plan_digest(plan) == fpd.plan_digest(fp.prune(reference, x[:1], **kwargs))


def test_prune_distributed_refuses_sharded_models():
    class FullyShardedDataParallel(nn.Module):  # stands in for torch's FSDP (matched by name)
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    wrapped = FullyShardedDataParallel(nn.Conv2d(3, 4, 3))
    with pytest.raises(TypeError, match="FSDP shards parameters"):
        fpd.prune_distributed(wrapped, torch.randn(1, 3, 8, 8), amount=0.5)


def test_init_from_env_without_torchrun_stays_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert fpd.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert fpd.init_from_env() is False
    assert not fpd.is_distributed()
    assert fpd.broadcast_object({"x": 1}) == {"x": 1}


def test_init_from_env_names_missing_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(
        RuntimeError, match="RANK, MASTER_ADDR, MASTER_PORT not set; launch with torchrun"
    ):
        fpd.init_from_env()
