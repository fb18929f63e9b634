"""PyOD's cheap detectors (HBOS, ECOD, COPOD) behind the project's ``Detector`` interface.

They are the field's strongest detectors that cost next to nothing: each models every feature on
its own (a histogram, or the empirical tails of its distribution) and adds up how rare a row is
feature by feature, so they fit in one pass, have no parameter that needs the data's scale, and
say which column made a row rare. They are PyOD's estimators (the maintained library), fitted on
the shared ``FeatureScaler`` output like every other detector and saved with joblib.

One change to PyOD's scoring, for ECOD and COPOD only: PyOD scores a batch by building the
empirical CDF of *training rows plus the whole batch*, so a user-day's score moves with the other
rows scored alongside it (scored alone or with its day, chunked or not). Here each row is scored
exactly as PyOD scores it when it is the only row of its batch — tails counted over the training
rows plus that row, skewness too — which the tests check against PyOD itself. HBOS scores against
its fitted histograms and needs no change.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Final

import numpy as np
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS

from anomaly_pipeline.detectors.preprocess import OutlierEstimator, SklearnOutlierDetector

#: Per-batch arrays that PyOD's ECOD/COPOD leave on the estimator: scratch, not fitted state.
_SCRATCH: Final[tuple[str, ...]] = ("U_l", "U_r", "U_skew", "O")


class PyODDetector(SklearnOutlierDetector):
    """A PyOD estimator; score = its ``decision_function`` (PyOD's scores: higher = abnormal).

    ``feature_contributions`` is None: the per-feature terms exist but are on PyOD's own scale, and
    the reason codes come from the detectors whose contributions share the scaled units.
    """

    def _score_scaled(self, Z: np.ndarray) -> np.ndarray:
        return np.asarray(self._pyod_model().decision_function(Z), dtype=np.float64)

    def _pyod_model(self) -> Any:
        """The fitted PyOD estimator (untyped: PyOD ships no type information)."""
        if self.model_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted")
        return self.model_


class HBOSDetector(PyODDetector):
    """Histogram-based outlier score: the sum over features of −log(histogram density).

    ``n_bins`` equal-width bins per feature (PyOD's default, or "auto" for Birgé–Rozenblac),
    ``alpha`` regularises empty bins, ``tol`` lets a value just outside the fitted range use the
    edge bin.
    """

    kind = "hbos"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        n_bins: int | str = 10,
        alpha: float = 0.1,
        tol: float = 0.5,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        self.n_bins = n_bins
        self.alpha = alpha
        self.tol = tol

    def _params(self) -> dict[str, Any]:
        return {"n_bins": self.n_bins, "alpha": self.alpha, "tol": self.tol}

    def _make_estimator(self) -> OutlierEstimator:
        return HBOS(n_bins=self.n_bins, alpha=self.alpha, tol=self.tol)


class _TailDetector(PyODDetector):
    """ECOD / COPOD: per-feature tail probabilities against the training rows (module docstring).

    With ``n`` training rows, a value ``x`` of a feature has left tail ``(#train ≤ x + 1)/(n + 1)``
    and right tail ``(#train ≥ x + 1)/(n + 1)``, what PyOD's column ECDF gives the last row of
    ``[train; x]``; ``U_l``/``U_r`` are their −logs and ``U_skew`` picks the tail the feature's
    skewness points to (both for a symmetric one), the skewness of ``[train; x]`` as in PyOD.
    """

    def _fit_scaled(self, Z: np.ndarray, y: np.ndarray | None) -> None:
        super()._fit_scaled(Z, y)
        for name in _SCRATCH:  # per-batch arrays of the fit's own scoring: not worth saving
            if hasattr(self.model_, name):
                delattr(self.model_, name)

    def _score_scaled(self, Z: np.ndarray) -> np.ndarray:
        train = np.asarray(self._pyod_model().X_train, dtype=np.float64)
        ordered = np.sort(train, axis=0)
        n = len(ordered)
        at_most = np.column_stack(
            [np.searchsorted(ordered[:, j], Z[:, j], side="right") for j in range(Z.shape[1])]
        )
        below = np.column_stack(
            [np.searchsorted(ordered[:, j], Z[:, j], side="left") for j in range(Z.shape[1])]
        )
        u_left = -np.log((at_most + 1) / (n + 1))
        u_right = -np.log((n - below + 1) / (n + 1))
        sign = _skew_sign_with_row(train, Z)
        u_skew = u_left * -np.sign(sign - 1) + u_right * np.sign(sign + 1)
        return np.asarray(self._aggregate(u_left, u_right, u_skew).sum(axis=1), dtype=np.float64)

    @staticmethod
    @abstractmethod
    def _aggregate(u_left: np.ndarray, u_right: np.ndarray, u_skew: np.ndarray) -> np.ndarray:
        """Per-row, per-feature outlyingness from the two tails and the skewness-chosen one."""


def _skew_sign_with_row(train: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Per row of ``Z`` and column, the sign of the skewness of that column of ``[train; row]``.

    One extreme row can flip the sign of a nearly symmetric column's skewness, and with it the
    tail COPOD and ECOD read, so it is updated per row from the training central moments: with
    ``e = t − μ`` over the ``n`` training values and the row's ``d = x − μ``, the mean moves by
    ``δ = d/(n + 1)`` and the third central sum becomes ``Σe³ − 3δ·Σe² − nδ³ + (d − δ)³``. A column
    that stays constant gets 0 (symmetric), where scipy's NaN would make PyOD's score NaN.
    """
    n = len(train)
    mean = train.mean(axis=0)
    centred = train - mean
    sum2, sum3 = (centred**2).sum(axis=0), (centred**3).sum(axis=0)
    d = Z - mean
    delta = d / (n + 1)
    return np.sign(sum3 - 3 * delta * sum2 - n * delta**3 + (d - delta) ** 3)


class ECODDetector(_TailDetector):
    """Empirical-CDF outlier detection (Li et al., 2022): per feature, the rarer tail."""

    kind = "ecod"

    def _make_estimator(self) -> OutlierEstimator:
        return ECOD()

    @staticmethod
    def _aggregate(u_left: np.ndarray, u_right: np.ndarray, u_skew: np.ndarray) -> np.ndarray:
        return np.maximum(u_skew, np.maximum(u_left, u_right))


class COPODDetector(_TailDetector):
    """Copula-based outlier detection (Li et al., 2020): per feature, the skewness-chosen tail or
    the mean of both, whichever is rarer."""

    kind = "copod"

    def _make_estimator(self) -> OutlierEstimator:
        return COPOD()

    @staticmethod
    def _aggregate(u_left: np.ndarray, u_right: np.ndarray, u_skew: np.ndarray) -> np.ndarray:
        return np.maximum(u_skew, (u_left + u_right) / 2)
