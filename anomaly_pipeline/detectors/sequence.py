"""Sequence detector: how atypical a user-day's actions and their timing are to a next-event model.

Input type (``fit``, ``decision_function``): a polars DataFrame with the ``behaviour_sequences``
list columns (README "Data contracts"), one row per user-day, other columns ignored:

* ``tokens`` — list[int], 1 + index in ``schema.EVENT_TYPES``, 0 = padding;
* ``log_gaps`` — list[float], log1p seconds since the previous event;
* ``category_change`` — list[int], 0/1;

all three padded to one length (``max_len``) per frame. Padding may sit on either side: rows are
compacted so real events come first, keeping their order. Every row needs at least one event.
``nn.sequence.NextEventModule`` predicts each event's type, log-gap bin and category-change flag
from the events before it. Score = ``Σ_k z_k²`` over those three parts, where ``z_k`` is the
row's summed surprisal (−log p) of part k minus the summed surprisal the model expected, in units
of its standard deviation: high both for rows more surprising than ordinary traffic (impossible
orders, odd timing) and for rows far *more predictable* than it (bots repeating view, click at a
metronome pace), which a plain mean negative log-likelihood would call the most normal of all.
See ``nn.sequence`` for the derivation. Computed in batches of ``score_batch_size`` rows.
Labels are ignored: the model learns what ordinary traffic looks like.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
import torch

from anomaly_pipeline.detectors.base import Detector
from anomaly_pipeline.nn.detector_support import (
    DEFAULT_SCORE_BATCH_SIZE,
    LightningDetectorMixin,
    chunked,
)
from anomaly_pipeline.nn.fitting import torch_threads
from anomaly_pipeline.nn.sequence import ENCODERS, NextEventModule
from anomaly_pipeline.nn.settings import TrainerSettings
from anomaly_pipeline.schema import EVENT_TYPES

SEQUENCE_COLUMNS: Final[tuple[str, ...]] = ("tokens", "log_gaps", "category_change")


class SequenceDetector(LightningDetectorMixin, Detector):
    """Next-event model (``encoder="gru"`` or ``"transformer"``) over behaviour sequences.

    Parameters
    ----------
    encoder: "gru" (cheap, strong on short sequences) or "transformer" (causal self-attention).
    embed_dim / hidden_dim / num_layers: sizes of the token embedding and the encoder.
    num_heads: attention heads (transformer only; must divide ``hidden_dim``).
    dropout: dropout inside the encoder.
    gap_bins: equal-width bins of the log gap on ``[0, log1p(1 day)]`` that the gap head
        predicts (24: each bin spans a factor of about 1.6 in seconds).
    trainer: ``TrainerSettings`` (or its dict).
    score_batch_size: rows per forward pass when scoring.
    """

    kind = "sequence"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        encoder: str = "gru",
        embed_dim: int = 16,
        hidden_dim: int = 32,
        num_layers: int = 1,
        num_heads: int = 4,
        dropout: float = 0.0,
        gap_bins: int = 24,
        trainer: TrainerSettings | Mapping[str, Any] | None = None,
        score_batch_size: int = DEFAULT_SCORE_BATCH_SIZE,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        for name, value in (
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
        ):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(gap_bins, int) and gap_bins >= 2):
            raise ValueError(f"gap_bins must be an integer >= 2, got {gap_bins!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.config: dict[str, Any] = {
            "n_event_types": len(EVENT_TYPES),
            "encoder": encoder,
            "embed_dim": embed_dim,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "dropout": dropout,
            "gap_bins": gap_bins,
        }
        self._init_lightning(trainer, score_batch_size)
        self.module_: NextEventModule | None = None

    def _params(self) -> dict[str, Any]:
        params = {key: value for key, value in self.config.items() if key != "n_event_types"}
        return {**params, **self._lightning_params()}

    def _fit(self, X: Any, y: np.ndarray | None) -> None:
        arrays = sequence_tensors(X)
        train: tuple[torch.Tensor, ...] = arrays
        val: tuple[torch.Tensor, ...]
        if self._validation is not None:
            val = sequence_tensors(self._validation[0])
        else:
            train_rows, val_rows = self._holdout(len(arrays[0]))
            train = tuple(a[train_rows] for a in arrays)
            val = tuple(a[val_rows] for a in arrays)
        config = {**self.config, "learning_rate": self.trainer_settings.learning_rate}

        def build() -> NextEventModule:
            module = NextEventModule(**config)
            module.init_output_priors(*train)
            return module

        self.module_ = self._train(build, train, val)

    def decision_function(self, X: Any) -> np.ndarray:
        if self.module_ is None:
            raise RuntimeError("SequenceDetector is not fitted")
        tokens, gaps, changes = sequence_tensors(X)
        scores = np.empty(len(tokens), dtype=np.float64)
        with torch_threads(self.trainer_settings.cpu_threads):
            for rows in chunked(len(tokens), self.score_batch_size):
                scores[rows] = self.module_.typicality_score(
                    tokens[rows], gaps[rows], changes[rows]
                ).numpy()
        return scores

    def _save_state(self, path: Path) -> None:
        config = {**self.config, "learning_rate": self.trainer_settings.learning_rate}
        self._save_module(path, self.module_, config)

    def _load_state(self, path: Path) -> None:
        self.module_ = self._load_module(  # type: ignore[assignment]
            path, lambda config: NextEventModule(**config)
        )


def sequence_tensors(frame: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tokens long, log_gaps float32, category_change float32)``, each rows × max_len.

    Validates the frame against the contract (columns present, no nulls, equal padded lengths,
    token ids in range, finite gaps, 0/1 changes, at least one event per row) and compacts each
    row so its real events come first.
    """
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(
            f"SequenceDetector expects a polars DataFrame with columns "
            f"{list(SEQUENCE_COLUMNS)}, got {type(frame).__name__}"
        )
    missing = [c for c in SEQUENCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"sequence frame lacks column(s) {missing}")
    arrays = [_padded_matrix(frame, column) for column in SEQUENCE_COLUMNS]
    widths = {column: a.shape[1] for column, a in zip(SEQUENCE_COLUMNS, arrays, strict=True)}
    if len(set(widths.values())) != 1:
        raise ValueError(
            f"columns {list(SEQUENCE_COLUMNS)} must share one padded length, got {widths}"
        )
    tokens, gaps, changes = arrays
    if tokens.size and (tokens.min() < 0 or tokens.max() > len(EVENT_TYPES)):
        raise ValueError(
            f"column 'tokens' must hold ids in [0, {len(EVENT_TYPES)}] "
            f"(0 = padding), got [{tokens.min()}, {tokens.max()}]"
        )
    if not np.isfinite(gaps).all():
        raise ValueError("column 'log_gaps' must hold finite numbers")
    if not np.isin(changes, (0, 1)).all():
        raise ValueError("column 'category_change' must hold only 0 and 1")
    real = tokens != 0
    empty = np.flatnonzero(~real.any(axis=1))
    if len(empty):
        raise ValueError(
            f"column 'tokens' must hold at least one event per row; rows "
            f"{empty[:5].tolist()} are all padding"
        )
    # Stable sort on "is padding" moves real events to the front without reordering them.
    order = np.argsort(~real, axis=1, kind="stable")
    tokens, gaps, changes = (np.take_along_axis(a, order, axis=1) for a in arrays)
    return (
        torch.from_numpy(tokens.astype(np.int64)),
        torch.from_numpy(gaps.astype(np.float32)),
        torch.from_numpy(changes.astype(np.float32)),
    )


def _padded_matrix(frame: pl.DataFrame, column: str) -> np.ndarray:
    """A list column as a rows × width numpy matrix; all lists must have one length."""
    series = frame.get_column(column)
    if not isinstance(series.dtype, (pl.List, pl.Array)):
        raise ValueError(f"column {column!r} must be a list column, got {series.dtype}")
    if isinstance(series.dtype, pl.Array):
        series = series.arr.to_list()
    lengths = series.list.len().to_numpy()
    if len(series) and lengths.min() != lengths.max():
        raise ValueError(
            f"column {column!r} must be padded to one length, got lengths "
            f"{lengths.min()}..{lengths.max()}"
        )
    if series.null_count() or (len(series) and lengths.max() and series.explode().null_count()):
        raise ValueError(f"column {column!r} must not hold nulls")
    width = int(lengths.max()) if len(series) else 0
    return series.list.to_array(width).to_numpy().reshape(len(series), width)
