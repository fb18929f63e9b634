"""In-memory tensor data for the Lightning models, indexed a batch at a time.

User-day tables fit in memory many times over, so the fast input pipeline is the simplest one:
whole tensors held once, and every batch cut with one advanced-indexing call.
``BatchIndexedDataset`` implements ``__getitems__``, which ``torch.utils.data.DataLoader`` calls
with the sampler's batch of indices instead of looping ``__getitem__`` per sample and collating;
the collate function is then the identity. The DataLoaders keep ordinary samplers
(``RandomSampler`` / ``SequentialSampler``) so that Lightning can swap in a
``DistributedSampler`` under DDP and each rank sees only its shard.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset


class BatchIndexedDataset(Dataset[tuple[torch.Tensor, ...]]):
    """Equal-length tensors (first dimension = rows) served a whole batch per call."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors:
            raise ValueError("BatchIndexedDataset needs at least one tensor")
        lengths = {int(t.shape[0]) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"tensors must share their first dimension, got lengths {lengths}")
        self.tensors = tensors

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t.index_select(0, rows) for t in self.tensors)


def _identity(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Collate for ``BatchIndexedDataset``: the batch is already stacked."""
    return batch


def batch_loader(
    dataset: BatchIndexedDataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader that cuts ``dataset`` into batches with one indexing call each."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        # torch types collate_fn as taking a list of samples; with __getitems__
        # it receives the batch that call already stacked.
        collate_fn=_identity,  # type: ignore[arg-type]
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


class TensorDataModule(pl.LightningDataModule):
    """Train and validation tensors in memory; shuffled training batches, ordered validation."""

    def __init__(
        self,
        train: Sequence[torch.Tensor],
        val: Sequence[torch.Tensor],
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_set = BatchIndexedDataset(*train)
        self.val_set = BatchIndexedDataset(*val)
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise ValueError(
                f"training needs rows in both sets, got {len(self.train_set)} "
                f"training and {len(self.val_set)} validation rows"
            )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        return batch_loader(
            self.train_set,
            self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            seed=self.seed,
        )

    def val_dataloader(self) -> DataLoader:
        return batch_loader(
            self.val_set, self.batch_size, shuffle=False, num_workers=self.num_workers
        )
