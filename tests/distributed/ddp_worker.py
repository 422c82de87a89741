"""One rank of the 2-process gloo tests: ``python ddp_worker.py WORKDIR SCENARIO...``.

The parent sets the environment as torchrun would (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``); the worker joins with :func:`filterprune.distributed.init_from_env`.

The parent test writes the model state and the data to ``WORKDIR/setup.pt``; each scenario writes
its results to ``WORKDIR/<scenario>_<rank>.*`` for the parent to check. Collectives time out after
``COLLECTIVE_TIMEOUT`` seconds, so a broken scenario fails instead of hanging.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import filterprune as fp
from filterprune import distributed as fpd

COLLECTIVE_TIMEOUT = 30.0
RANK_BATCHES = {0: [0, 1], 1: [2, 3]}  # uneven on purpose: 6 and 10 examples
BATCH_SIZES = (3, 3, 4, 6)


class Net(nn.Module):
    """Stem, a residual block (a group of two producers), a widening conv and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.res = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.wide = nn.Conv2d(8, 12, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(12)
        self.head = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.bn0(self.stem(x)))
        s = F.relu(s + self.bn1(self.res(s)))
        w = F.relu(self.bn2(self.wide(s)))
        return self.head(w.mean((2, 3)))


def make_setup(path: Path) -> None:
    """Model state and 16 examples in 4 batches, written once by the parent.

    Each rank alone, and both together, give three different Taylor plans (checked by the test).
    """
    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        for bn in (model.bn0, model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    batches = []
    for i, n in enumerate(BATCH_SIZES):
        x = torch.randn(n, 3, 8, 8, generator=g)
        if i in RANK_BATCHES[1]:  # rank 1's shard comes from another distribution (non-IID)
            x[:, 0] += 3.0
            x[:, 1] *= 4.0
        batches.append((x, torch.randint(0, 4, (n,), generator=g)))
    torch.save({"state": model.state_dict(), "batches": batches}, path)


def load(workdir: Path) -> tuple[Net, list]:
    setup = torch.load(workdir / "setup.pt", weights_only=True)
    model = Net()
    model.load_state_dict(setup["state"])
    return model, setup["batches"]


def shard(batches: list, rank: int) -> list:
    return [batches[i] for i in RANK_BATCHES[rank]]


def example(batches: list) -> torch.Tensor:
    return batches[0][0][:1]


def prune_kwargs(batches: list, amount: float = 0.5) -> dict:
    return {"amount": amount, "criterion": "taylor", "batches": batches, "loss_fn": F.cross_entropy}


# ----- scenarios -------------------------------------------------------------------------------
def scenario_plan(rank: int, workdir: Path) -> None:
    """Rank on this rank's shard (scores), then prune with Taylor (plan and digest)."""
    model, batches = load(workdir)
    mine = shard(batches, rank)
    scores = fp.rank(
        model, example(batches), batches=mine, loss_fn=F.cross_entropy, normalize=False
    )
    torch.save(scores, workdir / f"scores_{rank}.pt")
    plan = fp.prune(model, example(batches), **prune_kwargs(mine))
    digest = fpd.check_same_plan(plan, timeout=COLLECTIVE_TIMEOUT)
    (workdir / f"plan_{rank}.json").write_text(plan.to_json())
    (workdir / f"digest_{rank}.txt").write_text(digest)


def scenario_ddp(rank: int, workdir: Path) -> None:
    """Two prune_distributed steps on a DDP model, then one training step through the wrapper."""
    model, batches = load(workdir)
    mine = shard(batches, rank)
    ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
    before = fp.param_count(model)
    ddp2, plan = fpd.prune_distributed(
        ddp, example(batches), timeout=COLLECTIVE_TIMEOUT, **prune_kwargs(mine)
    )
    ddp3, plan2 = fpd.prune_distributed(
        ddp2, example(batches), timeout=COLLECTIVE_TIMEOUT, **prune_kwargs(mine, 0.25)
    )
    optimizer = torch.optim.SGD(ddp3.parameters(), lr=0.1)
    x, y = mine[0]
    loss = F.cross_entropy(ddp3(x), y)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in ddp3.parameters()])
    optimizer.step()
    params = torch.cat([p.detach().flatten() for p in ddp3.parameters()])
    torch.save({"grads": grads, "params": params}, workdir / f"ddp_{rank}.pt")
    result = {
        "types": [type(ddp2).__name__, type(ddp3).__name__],
        "kwargs_kept": ddp3.gradient_as_bucket_view,
        "inner_is_model": fpd.unwrap(ddp3) is model and ddp2 is not ddp and ddp3 is not ddp2,
        "params": [before, fp.param_count(model)],
        "digest": fpd.plan_digest(plan),
        "removed": [plan.num_removed, plan2.num_removed],
        "loss": loss.item(),
    }
    (workdir / f"ddp_{rank}.json").write_text(json.dumps(result))


def scenario_mismatch(rank: int, workdir: Path) -> None:
    """Rank 1 passes a plan that removes a different channel of group 'b'; then equal plans."""
    plan = fp.Plan(
        removed_outputs={"a": [1], "b": [0, 2 + rank]},
        channels={"a": [3, 4], "b": [4, 6]},
        groups={"a": [1], "b": [0, 2 + rank]},
    )
    result: dict = {"raised": False}
    start = time.monotonic()
    try:
        fpd.check_same_plan(plan, timeout=COLLECTIVE_TIMEOUT)
    except fpd.DistributedMismatchError as exc:
        result = {"raised": True, "message": str(exc), "ranks": exc.ranks, "group": exc.group}
    result["seconds"] = time.monotonic() - start
    same = fp.Plan(groups={"a": [1]}, removed_outputs={"a": [1]}, channels={"a": [3, 4]})
    result["same_digest"] = fpd.check_same_plan(same, timeout=COLLECTIVE_TIMEOUT)
    (workdir / f"mismatch_{rank}.json").write_text(json.dumps(result))


def scenario_absent(rank: int, workdir: Path) -> None:
    """Rank 1 never calls check_same_plan; rank 0 must fail after its short timeout."""
    if rank == 1:
        time.sleep(3.0)
        return
    result: dict = {"raised": False}
    start = time.monotonic()
    try:
        fpd.check_same_plan(fp.Plan(), timeout=1.0)
    except fpd.DistributedMismatchError as exc:
        result = {"raised": True, "message": str(exc)}
    result["seconds"] = time.monotonic() - start
    (workdir / f"absent_{rank}.json").write_text(json.dumps(result))


def scenario_helpers(rank: int, workdir: Path) -> None:
    """broadcast_object, main_process_only and the rank queries across two processes."""

    @fpd.main_process_only
    def write(text: str) -> None:
        (workdir / f"written_by_{rank}.txt").write_text(text)

    write("report")
    fpd.barrier()
    result = {
        "rank": fpd.process_index(),
        "local_rank": fpd.local_process_index(),
        "world": fpd.world_size(),
        "main": fpd.is_main_process(),
        "decision": fpd.broadcast_object({"accepted": rank == 0, "from": rank}),
        "written": sorted(p.name for p in workdir.glob("written_by_*")),
    }
    (workdir / f"helpers_{rank}.json").write_text(json.dumps(result))


SCENARIOS = {
    "helpers": scenario_helpers,
    "plan": scenario_plan,
    "ddp": scenario_ddp,
    "mismatch": scenario_mismatch,
    "absent": scenario_absent,
}


def main(argv: list[str]) -> None:
    workdir, *names = argv
    torch.set_num_threads(1)
    assert fpd.init_from_env(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        for name in names:
            SCENARIOS[name](fpd.process_index(), Path(workdir))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
