"""A tiny LightningModule and data for the Lightning callback tests (and their DDP worker)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyNet(nn.Module):
    """conv-bn-relu, conv-relu, a residual-free head: 3x12x12 -> 4 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 12, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(12 * 6 * 6, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyModule(L.LightningModule):
    """Trains ``self.model`` with SGD and a StepLR schedule (halving every epoch)."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.model = TinyNet()
        self.loss = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss(self(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return [optimizer], [scheduler]


def tiny_data(n: int = 64, seed: int = 0) -> TensorDataset:
    """Images whose class is the colour channel with the largest mean (learnable in a few steps)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 12, 12, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    x[torch.arange(n), y] += 1.0
    return TensorDataset(x, y)


def loaders(batch_size: int = 16) -> tuple[DataLoader, DataLoader]:
    return (
        DataLoader(tiny_data(64, 0), batch_size=batch_size, shuffle=False),
        DataLoader(tiny_data(32, 1), batch_size=batch_size),
    )


def trainer_kwargs(tmp_path, **extra) -> dict:
    return dict(
        accelerator="cpu",
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=L.pytorch.loggers.CSVLogger(str(tmp_path), name="logs"),
        **extra,
    )
