"""Map raw detector scores onto a 0–1000 points scale that means the same for every detector.

Raw scores are not comparable between detectors (a Mahalanobis distance, an isolation depth, a
reconstruction error), so policy bands and dashboards would have to be re-tuned for every model.
``ScoreScaler`` turns a raw score into *how rare it is in the training window*:

* Inside the training range the scale follows the empirical CDF ``F`` of the training scores,
  read from stored quantiles and linearly interpolated between them::

      points = max_points_in_range * (1 - (1 - F) ** tail_power)

  With the defaults (900, 0.5) the median maps to ≈ 264, the 90th percentile to ≈ 615, the 99th
  to ≈ 810 and the 99.9th to ≈ 872: the square root of the survival ``1 - F`` gives the top
  percentiles — the rows anyone acts on — far more room than a linear CDF, which would squeeze
  the top 1 % into the last 1 % of the scale.
* Beyond the training maximum the remaining 100 points are an exponential tail::

      points = 900 + 100 * (1 - exp(-(score - train_max) / tail_scale))

  ``tail_scale`` is the width of the training's own top percentile (``max - q99``), so one such
  width past the max gives ≈ 963, three give ≈ 995: 1000 is approached only far beyond anything
  seen in training, and scores beyond the max still stay ordered.
* Below the training minimum the scale is 0.

The mapping is monotone (non-decreasing everywhere, strictly increasing past the max), so the
detector's raw threshold maps into the same scale (``points``/``threshold_points_``) and a policy
band on points is a threshold on the raw score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

#: Format version written by ``to_dict``; ``from_dict`` refuses others.
SCALER_FORMAT = 1
MAX_POINTS = 1000.0


class ScoreScaler:
    """Monotone map from raw detector scores to 0–1000 points, fitted on training scores."""

    def __init__(
        self, n_quantiles: int = 1001, max_points_in_range: float = 900.0, tail_power: float = 0.5
    ) -> None:
        if n_quantiles < 2:
            raise ValueError(f"n_quantiles must be >= 2, got {n_quantiles}")
        if not 0.0 < max_points_in_range < MAX_POINTS:
            raise ValueError(
                f"max_points_in_range must be in (0, {MAX_POINTS:g}), got {max_points_in_range}"
            )
        if not 0.0 < tail_power <= 1.0:
            raise ValueError(f"tail_power must be in (0, 1], got {tail_power}")
        self.n_quantiles = n_quantiles
        self.max_points_in_range = max_points_in_range
        self.tail_power = tail_power
        self.quantiles_: np.ndarray | None = None
        self.levels_: np.ndarray | None = None
        self.tail_scale_: float | None = None
        self.n_train_: int | None = None
        self.threshold_: float | None = None
        self.threshold_points_: float | None = None

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, train_scores: ArrayLike, threshold: float | None = None) -> Self:
        """Store the training score quantiles; ``threshold`` (the detector's) is mapped too.

        Tied quantiles collapse to one knot carrying the highest level, so the interpolated CDF
        is right-continuous like the empirical one (a score equal to a mass point gets the share
        of training scores ``<=`` it).
        """
        scores = _finite_1d(train_scores, "train_scores")
        if scores.size == 0:
            raise ValueError(
                "train_scores is empty; a scaler needs the training score distribution"
            )
        levels = np.linspace(0.0, 1.0, min(self.n_quantiles, scores.size))
        quantiles = np.quantile(scores, levels)
        # keep, for every distinct quantile value, the highest level reaching it
        last_of_run = np.append(quantiles[1:] != quantiles[:-1], True)
        self.quantiles_ = quantiles[last_of_run]
        self.levels_ = levels[last_of_run]
        self.tail_scale_ = _tail_scale(scores)
        self.n_train_ = int(scores.size)
        self.threshold_ = None if threshold is None else float(threshold)
        self.threshold_points_ = None if threshold is None else self.points(float(threshold))
        return self

    # -- mapping ----------------------------------------------------------------------------
    def transform(self, scores: ArrayLike) -> np.ndarray:
        """Points in [0, 1000] for each raw score (float64 array of the same length)."""
        quantiles, levels, tail_scale = self._fitted()
        raw = _finite_1d(scores, "scores")
        cdf = np.interp(raw, quantiles, levels, left=0.0, right=1.0)
        points = self.max_points_in_range * (1.0 - (1.0 - cdf) ** self.tail_power)
        beyond = raw > quantiles[-1]
        tail_room = MAX_POINTS - self.max_points_in_range
        points[beyond] = self.max_points_in_range + tail_room * -np.expm1(
            -(raw[beyond] - quantiles[-1]) / tail_scale
        )
        return np.clip(points, 0.0, MAX_POINTS)

    def points(self, score: float) -> float:
        """Points of one raw score, e.g. a detector threshold."""
        return float(self.transform(np.array([score]))[0])

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; ``from_dict`` rebuilds an identical scaler."""
        quantiles, levels, tail_scale = self._fitted()
        return {
            "format": SCALER_FORMAT,
            "n_quantiles": self.n_quantiles,
            "max_points_in_range": self.max_points_in_range,
            "tail_power": self.tail_power,
            "quantiles": quantiles.tolist(),
            "levels": levels.tolist(),
            "tail_scale": tail_scale,
            "n_train": self.n_train_,
            "threshold": self.threshold_,
            "threshold_points": self.threshold_points_,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a scaler from ``to_dict`` output, checking that the state is coherent."""
        required = {
            "format",
            "n_quantiles",
            "max_points_in_range",
            "tail_power",
            "quantiles",
            "levels",
            "tail_scale",
            "n_train",
            "threshold",
            "threshold_points",
        }
        missing = sorted(required - set(state))
        if missing:
            raise ValueError(f"scaler state lacks key(s) {missing}")
        if state["format"] != SCALER_FORMAT:
            raise ValueError(
                f"scaler state has format {state['format']!r}; this code reads "
                f"format {SCALER_FORMAT}"
            )
        quantiles = np.asarray(state["quantiles"], dtype=np.float64)
        levels = np.asarray(state["levels"], dtype=np.float64)
        if quantiles.ndim != 1 or quantiles.size == 0 or quantiles.shape != levels.shape:
            raise ValueError(
                "scaler state: 'quantiles' and 'levels' must be equal-length, non-empty lists"
            )
        if np.any(np.diff(quantiles) <= 0) or np.any(np.diff(levels) <= 0):
            raise ValueError("scaler state: 'quantiles' and 'levels' must be strictly increasing")
        if not float(state["tail_scale"]) > 0:
            raise ValueError(f"scaler state: 'tail_scale' must be > 0, got {state['tail_scale']}")
        scaler = cls(
            n_quantiles=int(state["n_quantiles"]),
            max_points_in_range=float(state["max_points_in_range"]),
            tail_power=float(state["tail_power"]),
        )
        scaler.quantiles_ = quantiles
        scaler.levels_ = levels
        scaler.tail_scale_ = float(state["tail_scale"])
        scaler.n_train_ = int(state["n_train"])
        scaler.threshold_ = None if state["threshold"] is None else float(state["threshold"])
        scaler.threshold_points_ = (
            None if state["threshold_points"] is None else float(state["threshold_points"])
        )
        return scaler

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, float]:
        if self.quantiles_ is None or self.levels_ is None or self.tail_scale_ is None:
            raise RuntimeError("ScoreScaler is not fitted; call fit(train_scores) first")
        return self.quantiles_, self.levels_, self.tail_scale_


def _finite_1d(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array, refusing NaN/inf with a message naming ``name``."""
    array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf); "
            "scores must be finite numbers"
        )
    return array


def _tail_scale(scores: np.ndarray) -> float:
    """Width used to spread scores beyond the training max over the last 100 points.

    The top percentile's width (``max - q99``) says how fast the training tail itself thins
    out; when that is zero (heavy ties at the top) the whole range is used, and for a constant
    training set the score's own magnitude (at least 1) keeps the tail finite.
    """
    top = float(scores.max())
    for width in (top - float(np.quantile(scores, 0.99)), top - float(scores.min())):
        if width > 0:
            return width
    return max(abs(top), 1.0)
