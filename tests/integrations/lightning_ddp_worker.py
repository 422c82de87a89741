"""Run by test_lightning_ddp.py: FilterPruning under Lightning's DDP strategy, 2 CPU processes.

Lightning starts the second process itself (it runs this script again with LOCAL_RANK=1). Each
rank trains on its own shard, prunes twice, checks every step against its masked original and
writes what it ended with to OUT/rank{R}.json.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).parent))
from lit_tiny import TinyModule, loaders, trainer_kwargs  # noqa: E402

import filterprune as fp  # noqa: E402
from filterprune.distributed import plan_digest  # noqa: E402
from filterprune.integrations.lightning import FilterPruning  # noqa: E402
from filterprune.testing import max_difference  # noqa: E402


class Oracle(Callback):
    def __init__(self, pruning: FilterPruning, after: bool) -> None:
        self.pruning, self.after = pruning, after
        self.before: list[torch.nn.Module] = []
        self.diffs: list[float] = []
        self.wrapped: list[bool] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.after:
            self.before.append(copy.deepcopy(pl_module.model))
            return
        x = torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(1))
        original = self.before_cb.before[-1]
        self.diffs.append(max_difference(original, pl_module.model, self.pruning.last_plan, x))
        # right after the removal: a new DDP around the module, an optimizer over its parameters
        wrapper = trainer.strategy.model
        held = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
        self.wrapped.append(
            isinstance(wrapper, torch.nn.parallel.DistributedDataParallel)
            and wrapper.module is pl_module
            and {id(p) for p in wrapper.parameters()} == {id(p) for p in pl_module.parameters()}
            and held == {id(p) for p in pl_module.parameters()}
        )


def main(out: Path) -> None:
    torch.manual_seed(0)
    module = TinyModule()
    pruning = FilterPruning(amount=0.25, every_n_epochs=1, module="model")
    before, after = Oracle(pruning, after=False), Oracle(pruning, after=True)
    after.before_cb = before
    trainer = L.Trainer(
        max_epochs=2,
        devices=2,
        strategy="ddp",
        callbacks=[before, pruning, after],
        **trainer_kwargs(out, enable_checkpointing=False),
    )
    train, val = loaders(batch_size=8)
    trainer.fit(module, train, val)
    rank = trainer.global_rank
    params = torch.cat([p.detach().flatten() for p in module.parameters()])
    result = {
        "world_size": trainer.world_size,
        "wrapped_after_each_step": after.wrapped,
        "history": pruning.history,
        "original": pruning.original,
        "plan_digest": plan_digest(pruning.plan),
        "param_sum": float(params.double().sum()),
        "param_abs_sum": float(params.double().abs().sum()),
        "oracle_diffs": after.diffs,
        "params": fp.param_count(module),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
