"""What the Lightning-backed detectors share: settings, validation data, training, persistence.

``LightningDetectorMixin`` sits in front of a ``Detector`` base in the MRO. It adds keyword-only
validation data to ``fit`` (the training entry point has a separate validation table; callers
without one get a seeded random hold-out of ``val_fraction``), runs ``train_module`` with the
detector's ``TrainerSettings``, keeps the ``TrainingReport`` and saves/loads the module weights
next to the detector's ``meta.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import pytorch_lightning as pl
import torch

from anomaly_pipeline.nn.data import TensorDataModule
from anomaly_pipeline.nn.fitting import ModuleT, TrainingReport, train_module
from anomaly_pipeline.nn.settings import TrainerSettings

MODEL_FILE: Final[str] = "model.pt"
REPORT_FILE: Final[str] = "training_report.json"
#: Rows per forward pass when scoring: large enough to amortise per-call overhead, small enough
#: that activations stay in cache-friendly, bounded memory.
DEFAULT_SCORE_BATCH_SIZE: Final[int] = 8192


class LightningDetectorMixin:
    """Mix into a ``Detector`` subclass (listed before it) whose model is a LightningModule."""

    def _init_lightning(
        self, trainer: TrainerSettings | Mapping[str, Any] | None, score_batch_size: int
    ) -> None:
        self.trainer_settings = (
            trainer if isinstance(trainer, TrainerSettings) else TrainerSettings.from_dict(trainer)
        )
        if not (isinstance(score_batch_size, int) and score_batch_size >= 1):
            raise ValueError(f"score_batch_size must be an integer >= 1, got {score_batch_size!r}")
        self.score_batch_size = score_batch_size
        self.training_report_: TrainingReport | None = None
        self._validation: tuple[Any, np.ndarray | None] | None = None

    def _lightning_params(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer_settings.to_dict(),
            "score_batch_size": self.score_batch_size,
        }

    def fit(
        self,
        X: Any,
        y: np.ndarray | None = None,
        feature_names: list[str] | None = None,
        *,
        X_val: Any = None,
        y_val: np.ndarray | None = None,
    ) -> Self:
        """``Detector.fit`` plus optional validation rows for early stopping and checkpointing.

        Without ``X_val`` a random ``val_fraction`` of the training rows (seeded) is held out.
        """
        if X_val is None and y_val is not None:
            raise ValueError("y_val was given without X_val")
        self._validation = (X_val, y_val) if X_val is not None else None
        try:
            return super().fit(X, y, feature_names)  # type: ignore[misc]
        finally:
            self._validation = None

    def _holdout(self, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation row indices of a seeded random split."""
        n_val = max(1, round(n_rows * self.trainer_settings.val_fraction))
        if n_rows - n_val < 1:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 training rows to hold out "
                f"validation rows, got {n_rows}"
            )
        order = np.random.default_rng(self.trainer_settings.seed).permutation(n_rows)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    def _train(
        self,
        build: Callable[[], ModuleT],
        train: tuple[torch.Tensor, ...],
        val: tuple[torch.Tensor, ...],
    ) -> ModuleT:
        settings = self.trainer_settings
        data = TensorDataModule(
            train,
            val,
            batch_size=settings.batch_size,
            num_workers=settings.num_workers,
            seed=settings.seed,
        )
        module, self.training_report_ = train_module(build, data, settings)
        return module

    def _save_module(
        self, path: Path, module: pl.LightningModule | None, config: dict[str, Any]
    ) -> None:
        """Write the module's weights with the ``config`` needed to rebuild it."""
        if module is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        torch.save({"config": config, "state_dict": module.state_dict()}, path / MODEL_FILE)
        if self.training_report_ is not None:
            (path / REPORT_FILE).write_text(json.dumps(self.training_report_.to_dict(), indent=2))

    def _load_module(
        self, path: Path, build: Callable[[dict[str, Any]], pl.LightningModule]
    ) -> pl.LightningModule:
        """Rebuild the module with ``build(config)`` and load the saved weights into it."""
        saved = torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True)
        module = build(saved["config"])
        module.load_state_dict(saved["state_dict"])
        report = path / REPORT_FILE
        if report.exists():
            self.training_report_ = TrainingReport.from_dict(json.loads(report.read_text()))
        return module.eval()


def chunked(n_rows: int, size: int) -> list[slice]:
    """Row slices of at most ``size`` rows covering ``range(n_rows)``."""
    return [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]
