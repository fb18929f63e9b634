"""The one interface every detector implements (PyOD-style).

A detector is fitted on a training window and then scores user-days: ``decision_function`` returns
one raw score per row, higher meaning more abnormal; ``predict`` flags rows at or above the
threshold fitted at ``threshold_percentile`` of the training scores (``flag_threshold``).
``save``/``load`` round-trip a fitted detector through a directory (``meta.json`` +
detector-specific files) so that the same directory can be logged to MLflow and loaded by the
scoring asset.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

META_FILE = "meta.json"


class Detector(ABC):
    """Base class: subclasses implement ``_fit``, ``decision_function`` and the file hooks.

    ``X`` is a 2-D float array (rows = user-days, columns = ``feature_names``) for tabular
    detectors; sequence detectors document their own input type. ``y`` (1 = abnormal) is only used
    by semi-supervised detectors and ignored by the others.
    """

    #: Registry name, e.g. "gaussian", "isolation_forest", "autoencoder".
    kind: ClassVar[str]

    def __init__(self, threshold_percentile: float = 99.0) -> None:
        if not 0.0 < threshold_percentile < 100.0:
            raise ValueError(
                f"threshold_percentile must be in (0, 100), got {threshold_percentile}"
            )
        self.threshold_percentile = threshold_percentile
        self.threshold_: float | None = None
        self.feature_names: list[str] = []

    # -- training ---------------------------------------------------------------------------
    def fit(
        self, X: Any, y: np.ndarray | None = None, feature_names: list[str] | None = None
    ) -> Self:
        """Fit on training rows, then set ``threshold_`` at the training-score percentile."""
        if feature_names is not None:
            self.feature_names = list(feature_names)
        self._fit(X, y)
        self.threshold_ = flag_threshold(self.decision_function(X), self.threshold_percentile)
        return self

    @abstractmethod
    def _fit(self, X: Any, y: np.ndarray | None) -> None:
        """Learn the model's parameters."""

    # -- scoring ----------------------------------------------------------------------------
    @abstractmethod
    def decision_function(self, X: Any) -> np.ndarray:
        """One float per row; higher = more abnormal."""

    def predict(self, X: Any) -> np.ndarray:
        """1 where the score is at or above the fitted threshold, else 0."""
        if self.threshold_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return (self.decision_function(X) >= self.threshold_).astype(np.int8)

    def feature_contributions(self, X: Any) -> np.ndarray | None:
        """Per-row, per-feature share of the score (n_rows × n_features), or None if unavailable.

        Larger = that feature pushed the row towards abnormal. Reason codes are built from it.
        """
        return None

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted detector into directory ``path`` (created) and return it."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": self.kind,
            "threshold_percentile": self.threshold_percentile,
            "threshold": self.threshold_,
            "feature_names": self.feature_names,
            "params": self._params(),
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2))
        self._save_state(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Rebuild a detector saved with ``save``."""
        path = Path(path)
        meta = json.loads((path / META_FILE).read_text())
        if meta["kind"] != cls.kind:
            raise ValueError(f"{path} holds a {meta['kind']!r} detector, not {cls.kind!r}")
        detector = cls(threshold_percentile=meta["threshold_percentile"], **meta["params"])
        detector.threshold_ = meta["threshold"]
        detector.feature_names = list(meta["feature_names"])
        detector._load_state(path)
        return detector

    def _params(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON-serialisable) besides threshold_percentile."""
        return {}

    @abstractmethod
    def _save_state(self, path: Path) -> None:
        """Write fitted state into ``path``."""

    @abstractmethod
    def _load_state(self, path: Path) -> None:
        """Read fitted state written by ``_save_state``."""


def flag_threshold(train_scores: np.ndarray, percentile: float) -> float:
    """The raw score at or above which a row is flagged: the ``percentile`` of training scores,
    moved up to the smallest training score whose flagged share keeps the promise.

    Why: a detector whose scores tie (a sequence model giving thousands of short sessions the
    same surprisal) can put its percentile exactly on a mass of equal scores, and a small training
    set can put it just below a score; flagging "at or above" it would then flag more than the
    ``1 − percentile`` share the threshold promises. Moved up, the flagged training share never
    exceeds that share (unless the maximum itself is such a tie: nothing lies above it).
    """
    scores = np.sort(np.asarray(train_scores, dtype=np.float64))
    threshold = float(np.percentile(scores, percentile))
    allowed = 1.0 - percentile / 100.0 + 1e-12

    def flagged_share(values: np.ndarray) -> np.ndarray:
        return 1.0 - np.searchsorted(scores, values, side="left") / scores.size

    if flagged_share(np.array([threshold]))[0] <= allowed:
        return threshold
    candidates = np.unique(scores[scores > threshold])
    kept = candidates[flagged_share(candidates) <= allowed]
    return float(kept[0]) if kept.size else float(scores[-1])


def check_labels(y: Any, n_rows: int, name: str = "y") -> np.ndarray:
    """``y`` as a float32 vector of length ``n_rows``: 0 normal, 1 abnormal, NaN unknown.

    Unknown labels are normal in production data (days without ground truth); they are kept as
    NaN so the semi-supervised loss can skip them instead of calling them normal.
    """
    labels = np.asarray(y, dtype=np.float64)
    if labels.shape != (n_rows,):
        raise ValueError(f"{name} must be a 1-D array of {n_rows} labels, got shape {labels.shape}")
    if not (np.isin(labels, (0.0, 1.0)) | np.isnan(labels)).all():
        raise ValueError(f"{name} must hold only 0 (normal), 1 (abnormal) or NaN (unknown)")
    return labels.astype(np.float32)


def read_kind(path: str | Path) -> str:
    """The ``kind`` recorded in a saved detector directory."""
    return json.loads((Path(path) / META_FILE).read_text())["kind"]
