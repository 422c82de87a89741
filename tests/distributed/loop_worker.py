"""One rank of the 2-process loop tests: ``python loop_worker.py WORKDIR``.

The parent sets the environment as torchrun would (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). Each rank runs :func:`filterprune.loop.run_pruning` on its own data shard (the
shards come from different distributions), records what it saw (finetune calls, evaluations, the
files it wrote, its log lines) and saves its results to ``WORKDIR/loop_<rank>.json`` and
``WORKDIR/loop_<rank>.pt`` for the parent to compare. Collectives time out after
``COLLECTIVE_TIMEOUT`` seconds, so a broken step fails instead of hanging.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import os
import sys
import weakref
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from filterprune import distributed as fpd
from filterprune.criteria.taylor import ChannelStats
from filterprune.loop import PruneConfig, run_pruning

COLLECTIVE_TIMEOUT = 30.0
FINETUNE_STEPS = 3


class Net(nn.Module):
    """conv(3->8) BN ReLU, conv(8->12) BN ReLU, global pool, Linear(12->3) on (N, 3, 8, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def make_model() -> Net:
    torch.manual_seed(0)
    return Net()


def probe() -> torch.Tensor:
    """Inputs on which the parent compares the final models."""
    return torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(99))


def config(**changes: Any) -> PruneConfig:
    settings = {
        "criterion": "taylor",
        "amount": 0.25,
        "ranking_batches": 2,
        "finetune": FINETUNE_STEPS,
        "final_finetune": 2,
        "max_iterations": 2,
        # rank 0 votes 1, rank 1 votes 0: only rank 0's metrics may decide
        "metric": "vote",
        "metric_floor": 0.5,
        "seed": 0,
    }
    return PruneConfig(**{**settings, **changes})


def shard(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Four batches of 6 examples; rank 1's come from another distribution (non-IID)."""
    g = torch.Generator().manual_seed(10 + rank)
    x = torch.randn(24, 3, 8, 8, generator=g)
    if rank == 1:
        x[:, 0] += 2.0
        x[:, 1] *= 3.0
    y = x.mean((2, 3)).argmax(1)
    return [(x[i : i + 6], y[i : i + 6]) for i in range(0, 24, 6)]


class Hooks:
    """Callbacks on this rank's shard that record what the loop handed them."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.data = shard(rank)
        self.calls: list[dict[str, Any]] = []
        self.votes: list[float] = []
        self._previous: weakref.ref | None = None

    def finetune(self, model: nn.Module, start_step: int, budget: Any) -> int:
        new = self._previous is None or self._previous() is not model
        self._previous = weakref.ref(model)
        self.calls.append({"type": type(model).__name__, "new": new, "start": start_step})
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        for k in range(budget.steps):
            x, y = self.data[(start_step + k) % len(self.data)]
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        return budget.steps

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        x = torch.cat([b[0] for b in self.data])
        y = torch.cat([b[1] for b in self.data])
        accuracy = (model(x).argmax(1) == y).float().mean().item()
        model.train()
        vote = 1.0 if self.rank == 0 else 0.0
        self.votes.append(vote)
        return {"accuracy": accuracy, "vote": vote}

    def batches(self):
        return iter(self.data)


class ScriptedVotes(Hooks):
    """Votes in a fixed order per rank: rank 0 misses after the first removal then recovers;
    rank 1 says the opposite every time, so a rank following its own vote would diverge."""

    SCRIPT = {0: [1.0, 0.0, 1.0], 1: [1.0, 1.0, 0.0]}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        metrics = super().evaluate(model)
        self.votes[-1] = vote = self.SCRIPT[self.rank][len(self.votes) - 1]
        return {**metrics, "vote": vote}


def record_writes(writes: list[str], workdir: Path) -> None:
    """Make this process append to ``writes`` every file or folder it creates under ``workdir``.

    Watches the operating-system calls (``os.open`` for writing, ``open``, ``os.mkdir``,
    ``os.replace``, ``os.rename``), so it does not depend on how filterprune writes its files.
    """
    root = os.path.realpath(workdir)

    def note(path: Any) -> None:
        if isinstance(path, (str, Path)):
            full = os.path.realpath(os.fspath(path))
            if full.startswith(root + os.sep):
                writes.append(os.path.relpath(full, root))

    def watch(module: Any, name: str, is_write: Any, which: int = 0) -> None:
        original = getattr(module, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            if is_write(*args, **kwargs):
                note(args[which])
            return original(*args, **kwargs)

        setattr(module, name, watched)

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def always(*args: Any, **kwargs: Any) -> bool:
        return True

    def os_open_writes(path: Any, flags: int, *args: Any, **kwargs: Any) -> bool:
        return bool(flags & write_flags)

    def open_writes(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
        return any(c in kwargs.get("mode", mode) for c in "wax+")

    watch(os, "open", os_open_writes)
    watch(io, "open", open_writes)
    builtins.open = io.open
    watch(os, "mkdir", always)
    watch(os, "replace", always, which=1)
    watch(os, "rename", always, which=1)


def prune(
    workdir: Path, rank: int, run_dir: Path, hooks: Hooks | None = None, **kwargs: Any
) -> tuple[dict, dict]:
    hooks = hooks or Hooks(rank)
    result = run_pruning(
        make_model(),
        torch.zeros(1, 3, 8, 8),
        config=kwargs.pop("config", config()),
        finetune=hooks.finetune,
        evaluate=hooks.evaluate,
        batches=hooks.batches,
        loss_fn=F.cross_entropy,
        run_dir=run_dir,
        progress=True,
        **kwargs,
    )
    model = result.model.eval()
    with torch.no_grad():
        outputs = model(probe())
    summary = {
        "digest": fpd.plan_digest(result.plan),
        "removed": result.plan.num_removed,
        "stop_reason": result.stop_reason,
        "rows": [{k: v for k, v in row.items() if k != "seconds"} for row in result.rows],
        "calls": hooks.calls,
        "votes": hooks.votes,
        "unwrapped": type(result.model).__name__,
    }
    tensors = {"state": model.state_dict(), "outputs": outputs}
    return summary, tensors


def different_modules(rank: int) -> dict[str, Any]:
    """Rank 1 observed one module fewer than rank 0: the all-reduce must refuse, on both ranks."""
    stats = ChannelStats()
    stats.add("a", torch.ones(2, 4))
    if rank == 0:
        stats.add("b", torch.ones(2, 3))
    try:
        stats.result()
    except RuntimeError as exc:
        return {"raised": True, "message": str(exc)}
    return {"raised": False, "message": ""}


def main(workdir: Path) -> None:
    fpd.init_from_env(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    rank = fpd.process_index()
    torch.set_num_threads(1)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("filterprune.loop").addHandler(handler)
    logging.getLogger("filterprune.loop").setLevel(logging.INFO)
    writes: list[str] = []
    record_writes(writes, workdir)

    out: dict[str, Any] = {"rank": rank}
    out["full"], tensors = prune(workdir, rank, workdir / "run")
    out["full"]["writes"], out["full"]["logs"] = list(writes), list(messages)

    # interrupted after one iteration, then resumed with the settings of the full run
    prune(workdir, rank, workdir / "resumed", config=config(max_iterations=1, final_finetune=0))
    out["resume"], resumed = prune(workdir, rank, workdir / "resumed", resume=True)
    out["resume"]["writes"] = writes[len(out["full"]["writes"]) :]

    # rank 0's evaluation misses after the removal: every rank finetunes once more (recovery)
    out["recovery"], recovered = prune(
        workdir,
        rank,
        workdir / "recovery",
        hooks=ScriptedVotes(rank),
        config=config(max_iterations=1, final_finetune=0, recovery=1),
    )
    out["modules"] = different_modules(rank)
    (workdir / f"loop_{rank}.json").write_text(json.dumps(out))
    torch.save(
        {"full": tensors, "resume": resumed, "recovery": recovered}, workdir / f"loop_{rank}.pt"
    )
    fpd.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
