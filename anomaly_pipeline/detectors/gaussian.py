"""Gaussian density baseline: score = −log density of the scaled features.

The cheapest detector that still explains itself: the −log density is a constant (the
normaliser) plus half the squared Mahalanobis distance, and that distance splits exactly into
per-feature terms, which become reason codes. ``covariance="diag"`` treats features as independent
(robust, fast, blind to broken correlations such as many views without clicks); ``"full"`` models
correlations, regularised because user-day features are many, correlated and sometimes constant:
the covariance is shrunk towards a scaled identity (Ledoit-Wolf by default, or a fixed
``shrinkage``), and ``min_variance`` is added to its diagonal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from sklearn.covariance import empirical_covariance, ledoit_wolf, shrunk_covariance

from anomaly_pipeline.detectors.preprocess import ScaledDetector

_STATE_FILE: Final[str] = "gaussian.npz"
_COVARIANCES: Final[tuple[str, ...]] = ("diag", "full")


class GaussianDetector(ScaledDetector):
    """Multivariate Gaussian on ``FeatureScaler`` output; higher −log density = more abnormal.

    Parameters
    ----------
    covariance: "diag" (independent features) or "full" (shrunk covariance).
    shrinkage: for "full" only: None estimates it with Ledoit-Wolf, a number in [0, 1] fixes it.
    min_variance: floor (diag) / ridge (full) on variances, in scaled units; it bounds how much a
        feature that never varied in training can contribute when it finally does.
    """

    kind = "gaussian"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        covariance: Literal["diag", "full"] = "full",
        shrinkage: float | None = None,
        min_variance: float = 1e-2,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        if covariance not in _COVARIANCES:
            raise ValueError(f"covariance must be one of {_COVARIANCES}, got {covariance!r}")
        if shrinkage is not None and (covariance != "full" or not 0.0 <= shrinkage <= 1.0):
            raise ValueError(
                f"shrinkage must be None or in [0, 1] and only applies to "
                f"covariance='full'; got shrinkage={shrinkage!r} with "
                f"covariance={covariance!r}"
            )
        if not (np.isfinite(min_variance) and min_variance > 0):
            raise ValueError(f"min_variance must be a positive finite number, got {min_variance}")
        self.covariance = covariance
        self.shrinkage = shrinkage
        self.min_variance = float(min_variance)
        self.mean_: np.ndarray | None = None
        #: Inverse variances (diag, 1-D) or the precision matrix (full, 2-D).
        self.precision_: np.ndarray | None = None
        #: ½·(d·log 2π + log det Σ): the part of the score that is the same for every row.
        self.log_normaliser_: float | None = None

    def _params(self) -> dict[str, Any]:
        return {
            "covariance": self.covariance,
            "shrinkage": self.shrinkage,
            "min_variance": self.min_variance,
        }

    def _fit_scaled(self, Z: np.ndarray, y: np.ndarray | None) -> None:
        mean = Z.mean(axis=0)
        n_features = Z.shape[1]
        if self.covariance == "diag":
            variance = np.maximum(Z.var(axis=0), self.min_variance)
            self.precision_ = 1.0 / variance
            log_det = float(np.log(variance).sum())
        else:
            if self.shrinkage is None:
                cov, _ = ledoit_wolf(Z)
            else:
                cov = shrunk_covariance(empirical_covariance(Z), shrinkage=self.shrinkage)
            cov = cov + self.min_variance * np.eye(n_features)
            sign, log_det = np.linalg.slogdet(cov)
            if sign <= 0:
                raise ValueError(
                    "regularised covariance is not positive definite; raise min_variance"
                )
            precision = np.linalg.inv(cov)
            self.precision_ = (precision + precision.T) / 2.0
        self.mean_ = mean
        self.log_normaliser_ = 0.5 * (n_features * np.log(2.0 * np.pi) + float(log_det))

    def _score_scaled(self, Z: np.ndarray) -> np.ndarray:
        return self.log_normaliser_ + self._mahalanobis_terms(Z).sum(axis=1)

    def feature_contributions(self, X: Any) -> np.ndarray:
        """Per-feature split of the score's Mahalanobis part (rows × features).

        Rows sum to ``decision_function(X) − log_normaliser_``. Diag: feature i's term of the
        −log density measured from its minimum, ½·(z_i − μ_i)²/σ_i² (≥ 0). Full: ½·d_i·(Σ⁻¹d)_i
        with d = z − μ, which can be negative for a feature whose deviation is "explained" by a
        correlated one; the largest term is still the feature that most pushes the row out.
        """
        return self._mahalanobis_terms(self._scaled(X))

    def _fitted_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted mean and precision; a clear error before ``fit``."""
        if self.mean_ is None or self.precision_ is None:
            raise RuntimeError("GaussianDetector is not fitted")
        return self.mean_, self.precision_

    def _mahalanobis_terms(self, Z: np.ndarray) -> np.ndarray:
        mean, precision = self._fitted_state()
        deviation = Z - mean
        if precision.ndim == 1:
            return 0.5 * deviation**2 * precision
        return 0.5 * deviation * (deviation @ precision)

    def _save_model(self, path: Path) -> None:
        mean, precision = self._fitted_state()
        np.savez(
            path / _STATE_FILE,
            mean=mean,
            precision=precision,
            log_normaliser=np.float64(self.log_normaliser_),
        )

    def _load_model(self, path: Path) -> None:
        with np.load(path / _STATE_FILE, allow_pickle=False) as state:
            self.mean_ = state["mean"]
            self.precision_ = state["precision"]
            self.log_normaliser_ = float(state["log_normaliser"])
