"""The training loop every LightningModule here shares: one loss, logged per epoch, Adam.

Why a base class: the models differ only in their math (``_loss``); logging with ``sync_dist``
(so DDP ranks report the global mean) and the optimiser must stay identical, or a DDP run and a
single-process run would log different quantities.
"""

from __future__ import annotations

from abc import abstractmethod

import pytorch_lightning as pl
import torch


class LossModule(pl.LightningModule):
    """Subclasses set ``self.learning_rate`` and implement ``_loss(batch)``."""

    learning_rate: float

    @abstractmethod
    def _loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean loss of one batch."""

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=batch[0].shape[0],
        )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self.log(
            "val_loss",
            self._loss(batch),
            on_step=False,
            on_epoch=True,
            sync_dist=True,
            batch_size=batch[0].shape[0],
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)
