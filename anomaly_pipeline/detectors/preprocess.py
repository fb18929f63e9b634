"""Robust preprocessing shared by every tabular detector.

User-day features mix heavy-tailed counts (a click bot has 10 000 views, a shopper 12), bounded
rates, money and rare 0/1 flags. Models that measure distance or density need them on one scale, and
a handful of extreme rows in the training window must not set that scale. ``FeatureScaler`` does the
same four steps for every detector (and the Lightning autoencoder), so their inputs are comparable:

1. null / NaN / ±inf → the column's training median (the contract says features are non-null, but a
   scorer must not crash on one bad value, and the median is the least surprising stand-in);
2. signed ``log1p`` on columns that were non-negative and right-skewed at fit time (decided per
   column, stored, and replayed at transform time);
3. robust centring and scaling: median and IQR/1.349 (the standard deviation of a normal column),
   falling back to the standard deviation where the IQR vanishes (sparse counts that are mostly 0)
   and to 1 where that vanishes too (constant columns), so nothing divides by ~0 (the spread the
   reason coder uses too: ``anomaly_pipeline.robust_scale``);
4. clip to ``±clip`` so one absurd value cannot dominate a distance or a loss.

``ScaledDetector`` is the base for detectors that model the scaled matrix: it fits the scaler,
validates input shapes against ``feature_names`` and persists the scaler next to the model;
``SklearnOutlierDetector`` narrows it to one scikit-learn estimator with ``score_samples``.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import joblib
import numpy as np
import polars as pl

from anomaly_pipeline.detectors.base import Detector
from anomaly_pipeline.robust_scale import MIN_SPREAD, robust_spread

_FORMAT: Final[str] = "feature_scaler/v1"
SCALER_FILE: Final[str] = "scaler.json"


def feature_matrix(frame: pl.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """The ``feature_names`` columns of ``frame`` as a C-contiguous float32 matrix.

    Nulls become NaN (``FeatureScaler`` fills them); booleans become 0/1. Raises ``ValueError``
    naming the columns that are missing or not numeric, because a silently reordered or dropped
    feature would make every score meaningless.
    """
    names = list(feature_names)
    if not names:
        raise ValueError("feature_names is empty: a detector needs at least one feature column")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks feature column(s) {missing}")
    not_numeric = [
        f"{name} ({frame.schema[name]})"
        for name in names
        if not (frame.schema[name].is_numeric() or frame.schema[name] == pl.Boolean)
    ]
    if not_numeric:
        raise ValueError(f"feature column(s) must be numeric or boolean: {not_numeric}")
    matrix = frame.select(pl.col(name).cast(pl.Float32) for name in names).to_numpy()
    return np.ascontiguousarray(matrix, dtype=np.float32)


def label_vector(frame: pl.DataFrame, column: str = "label") -> np.ndarray:
    """The ``column`` labels of ``frame`` as float64: 1 abnormal, 0 normal, NaN where null.

    Null labels (days without ground truth) stay unknown rather than normal, so that a labelled
    detector learns only from what was actually judged (``check_labels``).
    """
    if column not in frame.columns:
        raise ValueError(f"frame lacks label column {column!r}")
    return frame.get_column(column).cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x)·log1p(|x|)``: log1p on the fitted (non-negative) range, still defined below 0."""
    return np.sign(values) * np.log1p(np.abs(values))


def _skewness(column: np.ndarray) -> float:
    """Sample skewness; 0 for a constant column (no tail to compress)."""
    deviation = column - column.mean()
    std = float(np.sqrt(np.mean(deviation**2)))
    if std <= MIN_SPREAD:
        return 0.0
    return float(np.mean(deviation**3) / std**3)


class FeatureScaler:
    """Median fill → per-column signed log1p → median/IQR scaling → clip (see module docstring).

    ``skew_threshold``: a non-negative column whose training skewness exceeds it is log-transformed.
    ``clip``: bound on the absolute scaled value.
    """

    def __init__(self, skew_threshold: float = 1.0, clip: float = 10.0) -> None:
        if not np.isfinite(skew_threshold):
            raise ValueError(f"skew_threshold must be finite, got {skew_threshold}")
        if not (np.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a positive finite number, got {clip}")
        self.skew_threshold = float(skew_threshold)
        self.clip = float(clip)
        self.fill_: np.ndarray | None = None
        self.log_: np.ndarray | None = None
        self.center_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    @property
    def n_features_in(self) -> int:
        """Number of columns the scaler was fitted on."""
        return len(self._fitted()[0])

    def fit(self, X: Any) -> FeatureScaler:
        """Learn fill values, log columns, centres and scales from training rows ``X``."""
        matrix = self._as_matrix(X)
        if matrix.shape[0] == 0:
            raise ValueError("cannot fit FeatureScaler on 0 rows")
        finite = np.where(np.isfinite(matrix), matrix, np.nan)
        # An all-missing training column has no median; 0 keeps it constant and harmless.
        all_missing = np.isnan(finite).all(axis=0)
        fill = np.zeros(matrix.shape[1])
        fill[~all_missing] = np.nanmedian(finite[:, ~all_missing], axis=0)
        filled = np.where(np.isnan(finite), fill, finite)

        log = np.array(
            [bool(col.min() >= 0.0 and _skewness(col) > self.skew_threshold) for col in filled.T],
            dtype=bool,
        )
        transformed = np.where(log, _signed_log1p(filled), filled)
        self.fill_ = fill
        self.log_ = log
        self.center_ = np.median(transformed, axis=0)
        self.scale_ = np.array([robust_spread(col) for col in transformed.T])
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Scale ``X`` with the fitted parameters.

        Returns float32 for float32 input (torch models want it) and float64 otherwise; the
        arithmetic is float64 either way so results do not depend on the caller's dtype.
        """
        fill, log, center, scale = self._fitted()
        matrix = self._as_matrix(X)
        if matrix.shape[1] != len(fill):
            raise ValueError(
                f"X has {matrix.shape[1]} columns; the scaler was fitted on {len(fill)}"
            )
        filled = np.where(np.isfinite(matrix), matrix, fill)
        transformed = np.where(log, _signed_log1p(filled), filled)
        scaled = np.clip((transformed - center) / scale, -self.clip, self.clip)
        out_dtype = np.float32 if np.asarray(X).dtype == np.float32 else np.float64
        return scaled.astype(out_dtype, copy=False)

    def fit_transform(self, X: Any) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state; Python floats round-trip exactly through JSON, so scores do too."""
        fill, log, center, scale = self._fitted()
        return {
            "format": _FORMAT,
            "skew_threshold": self.skew_threshold,
            "clip": self.clip,
            "fill": fill.tolist(),
            "log": log.tolist(),
            "center": center.tolist(),
            "scale": scale.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureScaler:
        """Rebuild a scaler from ``to_dict`` output, checking every field."""
        if state.get("format") != _FORMAT:
            raise ValueError(
                f"scaler state field 'format' must be {_FORMAT!r}, got {state.get('format')!r}"
            )
        missing = [
            key
            for key in ("skew_threshold", "clip", "fill", "log", "center", "scale")
            if key not in state
        ]
        if missing:
            raise ValueError(f"scaler state lacks field(s) {missing}")
        scaler = cls(skew_threshold=state["skew_threshold"], clip=state["clip"])
        arrays = {
            key: np.asarray(state[key], dtype=np.float64) for key in ("fill", "center", "scale")
        }
        arrays["log"] = np.asarray(state["log"], dtype=bool)
        lengths = {key: value.shape for key, value in arrays.items()}
        if (
            any(len(shape) != 1 for shape in lengths.values())
            or len({shape[0] for shape in lengths.values()}) != 1
        ):
            raise ValueError(
                f"scaler state fields fill/log/center/scale must be equal-length "
                f"lists, got shapes {lengths}"
            )
        for key in ("fill", "center", "scale"):
            if not np.isfinite(arrays[key]).all():
                raise ValueError(f"scaler state field {key!r} must hold finite numbers")
        if (arrays["scale"] <= 0).any():
            raise ValueError("scaler state field 'scale' must be > 0 everywhere")
        scaler.fill_, scaler.log_ = arrays["fill"], arrays["log"]
        scaler.center_, scaler.scale_ = arrays["center"], arrays["scale"]
        return scaler

    # -- helpers ----------------------------------------------------------------------------
    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.fill_ is None or self.log_ is None or self.center_ is None or self.scale_ is None:
            raise RuntimeError("FeatureScaler is not fitted")
        return self.fill_, self.log_, self.center_, self.scale_

    @staticmethod
    def _as_matrix(X: Any) -> np.ndarray:
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(f"X must be 2-D (rows × features), got shape {matrix.shape}")
        return matrix


class ScaledDetector(Detector):
    """Base for tabular detectors that model the ``FeatureScaler`` output instead of raw features.

    Subclasses implement ``_fit_scaled``/``_score_scaled`` on the scaled float64 matrix and the
    ``_save_model``/``_load_model`` hooks; this class owns input checks, the scaler and its file.
    """

    def __init__(self, threshold_percentile: float = 99.0) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        self.scaler_: FeatureScaler | None = None

    def _fit(self, X: Any, y: np.ndarray | None) -> None:
        matrix = self._check_matrix(X, expected_columns=len(self.feature_names) or None)
        if matrix.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 training rows, got {matrix.shape[0]}"
            )
        self.scaler_ = FeatureScaler()
        self._fit_scaled(self.scaler_.fit_transform(matrix), y)

    def decision_function(self, X: Any) -> np.ndarray:
        return self._score_scaled(self._scaled(X))

    def _scaled(self, X: Any) -> np.ndarray:
        """``X`` checked against the fitted width and scaled; raises if not fitted."""
        if self.scaler_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        matrix = self._check_matrix(X, expected_columns=self.scaler_.n_features_in)
        return self.scaler_.transform(matrix)

    def _check_matrix(self, X: Any, expected_columns: int | None) -> np.ndarray:
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2:
            raise ValueError(
                f"{type(self).__name__}: X must be 2-D (rows × features), got shape {matrix.shape}"
            )
        if expected_columns is not None and matrix.shape[1] != expected_columns:
            named = f" {self.feature_names}" if self.feature_names else ""
            raise ValueError(
                f"{type(self).__name__}: X has {matrix.shape[1]} columns, expected "
                f"{expected_columns}{named}"
            )
        return matrix

    def _save_state(self, path: Path) -> None:
        if self.scaler_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; nothing to save")
        (path / SCALER_FILE).write_text(json.dumps(self.scaler_.to_dict()))
        self._save_model(path)

    def _load_state(self, path: Path) -> None:
        self.scaler_ = FeatureScaler.from_dict(json.loads((path / SCALER_FILE).read_text()))
        self._load_model(path)

    @abstractmethod
    def _fit_scaled(self, Z: np.ndarray, y: np.ndarray | None) -> None:
        """Learn the model from the scaled training matrix ``Z``."""

    @abstractmethod
    def _score_scaled(self, Z: np.ndarray) -> np.ndarray:
        """One score per row of the scaled matrix ``Z``; higher = more abnormal."""

    @abstractmethod
    def _save_model(self, path: Path) -> None:
        """Write the model's fitted state (the scaler is already saved)."""

    @abstractmethod
    def _load_model(self, path: Path) -> None:
        """Read the state written by ``_save_model``."""


class OutlierEstimator(Protocol):
    """What ``SklearnOutlierDetector`` needs of a scikit-learn estimator."""

    def fit(self, X: np.ndarray) -> Any: ...

    def score_samples(self, X: np.ndarray) -> np.ndarray: ...


class SklearnOutlierDetector(ScaledDetector):
    """A ``ScaledDetector`` whose model is one scikit-learn estimator, persisted with joblib.

    scikit-learn's ``score_samples`` is higher for *normal* rows, so the score is its negation.
    Subclasses build the estimator from their JSON-safe constructor parameters.
    """

    def __init__(self, threshold_percentile: float = 99.0) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        self.model_: OutlierEstimator | None = None

    @abstractmethod
    def _make_estimator(self) -> OutlierEstimator:
        """A new, unfitted estimator configured from the detector's parameters."""

    def _fit_scaled(self, Z: np.ndarray, y: np.ndarray | None) -> None:
        estimator = self._make_estimator()
        estimator.fit(Z)
        self.model_ = estimator

    def _score_scaled(self, Z: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return -np.asarray(self.model_.score_samples(Z), dtype=np.float64)

    def _save_model(self, path: Path) -> None:
        joblib.dump(self.model_, path / f"{self.kind}.joblib")

    def _load_model(self, path: Path) -> None:
        # joblib unpickles: load only directories this pipeline wrote (its MLflow artifacts).
        self.model_ = joblib.load(path / f"{self.kind}.joblib")
