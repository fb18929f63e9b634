"""Isolation Forest baseline (scikit-learn) on ``FeatureScaler`` output.

Isolation Forest needs no distance or density, so it copes with mixed feature types and many
irrelevant columns, and it is fast to fit on a long training window. The trees do not need scaling,
but the shared preprocessing gives it the same missing-value handling and clipping as every other
detector, so all scores see identical inputs.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import IsolationForest

from anomaly_pipeline.detectors.preprocess import SklearnOutlierDetector


class IsolationForestDetector(SklearnOutlierDetector):
    """Score = −``IsolationForest.score_samples``: a short average path (easy to isolate) is high.

    ``feature_contributions`` is None: a forest's path length does not split into per-feature
    shares without an explainer (e.g. SHAP) that this project does not ship; reason codes come from
    the Gaussian or autoencoder detectors instead.

    Parameters mirror scikit-learn's. ``random_state`` (an int) makes fits reproducible;
    ``n_jobs`` parallelises fitting and scoring without changing the result.
    """

    kind = "isolation_forest"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        n_estimators: int = 200,
        max_samples: int | float | str = "auto",
        max_features: float = 1.0,
        n_jobs: int | None = 1,
        random_state: int = 0,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "max_features": self.max_features,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
        }

    def _make_estimator(self) -> IsolationForest:
        return IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
