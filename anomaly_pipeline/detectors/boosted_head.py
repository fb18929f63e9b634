"""Semi-supervised detector: a gradient-boosting classifier on the labelled user-days, on top of
an unsupervised base that still ranks what the labels never showed.

Why: the features carry the signal of the labelled anomaly types, but the autoencoder's labelled
head sees only its small latent code and a rank ensemble cannot use labels at all (``make
bench-quality``: worst type PR-AUC 0.217 with them, 0.873 for a gradient-boosting classifier on
the raw features). A classifier alone, though, learns only the patterns an analyst has already
confirmed; a new kind of abuse looks "normal" to it.

Score, when fitted with labels of both classes::

    score = p + unsupervised_weight · r

``p`` is scikit-learn's ``HistGradientBoostingClassifier`` probability of "abnormal", fitted on the
rows whose label is known (0 normal, 1 abnormal; NaN unknown is left out); ``r`` in [0, 1] is
the base's score as a rank among its own training scores (``ScoreScaler``, linear in the
empirical CDF, beyond the training maximum in (0.9, 1]), the base being an unsupervised detector
(default: the configured ``rank_ensemble``) fitted on *all* rows without labels. The weight is
small on purpose: ``p`` is close to 0 for most rows, and among those the base's rank decides, so a
type absent from the labels still comes up in the base's order; a larger weight lets the base's
false positives overtake labelled types the classifier is sure about. ``make bench-quality``
measured it (README, "Benchmarks").

Without labels, or without at least one known abnormal *and* one known normal row, there is
nothing to learn from: the detector is exactly its base (same scores, same threshold), which the
training path does not even fit as a separate candidate (``LABELLED_KINDS``).

Reason codes come from the base's ``feature_contributions`` (the classifier has no per-row
attribution on the scaled units the reasons use).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

import joblib
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from anomaly_pipeline.detectors.base import Detector, check_labels
from anomaly_pipeline.detectors.registry import (
    COLD_START_KIND,
    TABULAR_KINDS,
    load_detector,
    make_detector,
)
from anomaly_pipeline.scaling import MAX_POINTS, ScoreScaler

_BASE_DIR: Final[str] = "base"
_CLASSIFIER_FILE: Final[str] = "classifier.joblib"
_STATE_FILE: Final[str] = "head_state.json"


class BoostedHeadDetector(Detector):
    """Classifier probability plus a small share of the unsupervised base's rank (module docstring).

    ``base``: a tabular detector kind (not this one) with ``base_params``; ``unsupervised_weight``:
    the base rank's weight (>= 0); ``class_weight``: the classifier's (None or "balanced");
    ``random_state`` fixes the classifier's early-stopping split and binning sample.
    """

    kind = "boosted_head"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        base: str = COLD_START_KIND,
        base_params: Mapping[str, Any] | None = None,
        unsupervised_weight: float = 0.02,
        class_weight: Literal["balanced"] | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        if base not in TABULAR_KINDS or base == self.kind:
            raise ValueError(
                f"base must be a tabular detector kind other than {self.kind!r} "
                f"({[k for k in TABULAR_KINDS if k != self.kind]}), got {base!r}"
            )
        if not (np.isfinite(unsupervised_weight) and unsupervised_weight >= 0):
            raise ValueError(
                f"unsupervised_weight must be a finite number >= 0, got {unsupervised_weight!r}"
            )
        if class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.base = base
        self.base_params = dict(base_params or {})
        self.unsupervised_weight = float(unsupervised_weight)
        self.class_weight = class_weight
        self.random_state = int(random_state)
        self.base_: Detector | None = None
        self.classifier_: HistGradientBoostingClassifier | None = None
        self.base_rank_: ScoreScaler | None = None

    @property
    def supervised(self) -> bool:
        """True when fitted with labels of both classes; False = scores exactly as the base."""
        return self.classifier_ is not None

    def _params(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "base_params": self.base_params,
            "unsupervised_weight": self.unsupervised_weight,
            "class_weight": self.class_weight,
            "random_state": self.random_state,
        }

    def _fit(self, X: Any, y: np.ndarray | None) -> None:
        X = np.asarray(X, dtype=np.float64)
        self.base_ = make_detector(
            self.base, threshold_percentile=self.threshold_percentile, **self.base_params
        )
        self.base_.fit(X, None, feature_names=self.feature_names or None)
        self.classifier_, self.base_rank_ = None, None
        labels = check_labels(y, len(X)) if y is not None else None
        if labels is None or not ((labels == 1).any() and (labels == 0).any()):
            return  # nothing to learn from: the base alone (module docstring)
        known = ~np.isnan(labels)
        self.classifier_ = HistGradientBoostingClassifier(
            class_weight=self.class_weight, random_state=self.random_state
        ).fit(X[known], labels[known].astype(np.int8))
        self.base_rank_ = ScoreScaler(tail_power=1.0).fit(self.base_.decision_function(X))

    def decision_function(self, X: Any) -> np.ndarray:
        if self.base_ is None:
            raise RuntimeError("BoostedHeadDetector is not fitted")
        base_scores = self.base_.decision_function(X)
        if self.classifier_ is None or self.base_rank_ is None:
            return base_scores
        probability = self.classifier_.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]
        rank = self.base_rank_.transform(base_scores) / MAX_POINTS
        return np.asarray(probability + self.unsupervised_weight * rank, dtype=np.float64)

    def feature_contributions(self, X: Any) -> np.ndarray | None:
        if self.base_ is None:
            raise RuntimeError("BoostedHeadDetector is not fitted")
        return self.base_.feature_contributions(X)

    def _save_state(self, path: Path) -> None:
        if self.base_ is None:
            raise RuntimeError("BoostedHeadDetector is not fitted; nothing to save")
        self.base_.save(path / _BASE_DIR)
        rank = self.base_rank_.to_dict() if self.base_rank_ is not None else None
        (path / _STATE_FILE).write_text(json.dumps({"base_rank": rank}))
        if self.classifier_ is not None:
            joblib.dump(self.classifier_, path / _CLASSIFIER_FILE)

    def _load_state(self, path: Path) -> None:
        self.base_ = load_detector(path / _BASE_DIR)
        rank = json.loads((path / _STATE_FILE).read_text())["base_rank"]
        self.base_rank_ = ScoreScaler.from_dict(rank) if rank is not None else None
        # joblib unpickles: load only directories this pipeline wrote (its MLflow artifacts).
        self.classifier_ = joblib.load(path / _CLASSIFIER_FILE) if rank is not None else None
