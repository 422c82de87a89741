"""A tiny classification problem and callbacks for the loop tests (CPU, well under a second)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from filterprune.loop import Budget
from tiny_models import TwoConvNet


def make_model() -> TwoConvNet:
    """conv(3->8) BN ReLU, conv(8->12) BN ReLU, global pool, Linear(12->3) on (N, 3, 8, 8)."""
    torch.manual_seed(123)
    return TwoConvNet(num_classes=3, width=8, second=12)


def _dataset(n: int, seed: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=gen)
    y = x.mean((2, 3)).argmax(1)  # the brightest channel is the class
    return TensorDataset(x, y)


class Hooks:
    """finetune / evaluate / batches callbacks over a shuffled loader, counting their calls."""

    def __init__(self, fail_at_call: int | None = None) -> None:
        self.train = DataLoader(_dataset(64, 0), batch_size=16, shuffle=True)
        self.val = _dataset(32, 1)
        self.loss_fn = nn.functional.cross_entropy
        self.finetune_calls: list[tuple[int, Budget]] = []
        self.fail_at_call = fail_at_call

    def finetune(self, model: nn.Module, start_step: int, budget: Budget) -> int:
        self.finetune_calls.append((start_step, budget))
        if self.fail_at_call is not None and len(self.finetune_calls) == self.fail_at_call:
            raise KeyboardInterrupt("simulated interruption")
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.train()
        steps = 0
        for x, y in itertools.islice(itertools.cycle(self.train), budget.steps):
            opt.zero_grad()
            self.loss_fn(model(x), y).backward()
            opt.step()
            steps += 1
        return steps

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        model.eval()
        x, y = self.val.tensors
        out = model(x)
        model.train()
        return {
            "accuracy": (out.argmax(1) == y).float().mean().item(),
            "loss": self.loss_fn(out, y).item(),
        }

    def batches(self):
        return iter(self.train)

    def kwargs(self) -> dict[str, Callable]:
        return {
            "finetune": self.finetune,
            "evaluate": self.evaluate,
            "batches": self.batches,
            "loss_fn": self.loss_fn,
        }
