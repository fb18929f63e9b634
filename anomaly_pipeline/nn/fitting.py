"""The one place that turns ``TrainerSettings`` into a Lightning ``Trainer`` and runs it.

Every neural detector trains the same way: seeds fixed before the model is built (so every DDP
rank starts from the same weights and a rerun reproduces them), early stopping on ``val_loss``,
the best checkpoint written to a directory and restored after the loop (the last epoch is up to
``patience`` epochs worse), and a ``TrainingReport`` with the per-epoch history and throughput
that the training entry point logs to MLflow and reports to Dagster.

LightningModules trained here must log ``train_loss`` and ``val_loss`` (epoch level, synced).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from anomaly_pipeline.nn.data import TensorDataModule
from anomaly_pipeline.nn.settings import TrainerSettings

ModuleT = TypeVar("ModuleT", bound=pl.LightningModule)

#: Loggers whose start-up chatter ("GPU available: False", "LOCAL_RANK: 0 …") hides real output.
_NOISY_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "pytorch_lightning.accelerators.cuda",
    "lightning_fabric.utilities.seed",
)


@dataclass(frozen=True)
class EpochRecord:
    """Epoch-level losses (averaged over all ranks)."""

    epoch: int
    train_loss: float
    val_loss: float


@dataclass(frozen=True)
class TrainingReport:
    """What a training run did: enough to judge it and to log it."""

    epochs_run: int
    best_val_loss: float
    best_epoch: int
    #: Training samples processed per second over all ranks, validation time included.
    samples_per_second: float
    fit_seconds: float
    world_size: int
    history: list[EpochRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingReport:
        history = [EpochRecord(**record) for record in values.get("history", [])]
        return cls(**{**values, "history": history})


class _History(Callback):
    """Collects epoch losses, processed samples and the wall time of the fit loop."""

    def __init__(self) -> None:
        self.records: list[EpochRecord] = []
        self.samples = 0
        self.started = 0.0
        self.seconds = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.samples += int(batch[0].shape[0]) * trainer.world_size

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        self.records.append(
            EpochRecord(
                epoch=trainer.current_epoch,
                train_loss=float(metrics["train_loss"]),
                val_loss=float(metrics["val_loss"]),
            )
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.started


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: unchanged), then restore.

    The detectors' networks are small: splitting their matrix products across threads costs more
    in synchronisation than it gains, and far more when other processes hold the cores.
    """
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_module(
    build: Callable[[], ModuleT], data: TensorDataModule, settings: TrainerSettings
) -> tuple[ModuleT, TrainingReport]:
    """Seed, build the module, fit it, restore the best checkpoint; return it with a report.

    ``build`` is called after seeding so the initial weights depend only on ``settings.seed``.
    Every rank returns the same (best) weights.
    """
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    module = build()
    history = _History()
    with ExitStack() as stack:
        stack.enter_context(torch_threads(settings.cpu_threads))
        checkpoint_dir = settings.checkpoint_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="anomaly-ckpt-")
        )
        checkpoint = ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="best-{epoch}",
            monitor="val_loss",
            mode="min",
            save_top_k=1,
            save_weights_only=True,
        )
        trainer = pl.Trainer(
            **settings.trainer_kwargs(),
            callbacks=[
                history,
                checkpoint,
                EarlyStopping(
                    monitor="val_loss",
                    mode="min",
                    patience=settings.patience,
                    min_delta=settings.min_delta,
                ),
            ],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=False,
        )
        with warnings.catch_warnings():
            # In-memory tensors need no loader workers; Lightning's advice to add some is noise.
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(module, datamodule=data)
        best_path = checkpoint.best_model_path
        if not best_path:
            raise RuntimeError("training finished without a checkpoint: no validation epoch ran")
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        # The temporary checkpoint directory is rank 0's; nobody may delete it while others read.
        trainer.strategy.barrier("best-checkpoint-restored")
    module.cpu().eval()
    best_score = checkpoint.best_model_score
    report = TrainingReport(
        epochs_run=len(history.records),
        best_val_loss=float(best_score) if best_score is not None else float("nan"),
        best_epoch=min(history.records, key=lambda r: r.val_loss).epoch,
        samples_per_second=history.samples / history.seconds if history.seconds else 0.0,
        fit_seconds=history.seconds,
        world_size=trainer.world_size,
        history=history.records,
    )
    return module, report
