"""Population statistics of one feature over the training window, for z-scores and texts."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Final, Literal, Self

import numpy as np

from anomaly_pipeline.robust_scale import MIN_SPREAD, WIDENING, robust_spread

#: The population's own tail that bounds the scale from below: the 99th (1st) percentile read
#: as 2.33 sigma, or the 99.9th (3.09 sigma) for a feature at its median on 99 % of user-days.
TAIL_PERCENTILES: Final = (99.0, 99.9)
#: Share of the population at the median from which the tail floors the spread: a
#: zero-inflated count, flag or share, whose quantile ranges say little about how far its tail
#: reaches. A continuous feature keeps its robust spread, which a few percent of abnormal
#: training rows (no labels) cannot move, whereas its 1st percentile would be theirs.
POINT_MASS_SHARE: Final = 0.25


@dataclass(frozen=True)
class FeatureStats:
    """Summary of one feature over the applicable training rows.

    ``median`` and the quantiles are in the feature's own units (for the texts); ``center`` and
    ``scale`` are the median and a sigma-equivalent spread on the comparison scale (``log1p``
    for skewed features, see the catalogue's ``log``), from which the z-scores are taken. The
    spread widens its quantile range for zero-inflated features (``robust_scale.WIDENING``).
    Where the median is a point mass (``POINT_MASS_SHARE`` of the population at it: counts,
    flags, shares) the spread is never narrower than the population's own tail on the abnormal
    side implies (``TAIL_PERCENTILES``): a ratio that is 0 for half of the users but up to 0.7
    for one in a hundred would otherwise make 0.3 look like a 6-sigma event and outrank the
    signal that really is outside what normal users do.
    """

    median: float
    q25: float
    q75: float
    q99: float
    center: float
    scale: float
    log: bool
    n: int

    @classmethod
    def of(
        cls, values: np.ndarray, log: bool, direction: Literal["high", "low", "both"] = "both"
    ) -> Self:
        q25, median, q75, q99 = np.quantile(values, [0.25, 0.50, 0.75, 0.99])
        compared = comparison_scale(values, log)
        center = float(np.median(compared))
        return cls(
            float(median),
            float(q25),
            float(q75),
            float(q99),
            center,
            _spread(compared, center, direction),
            log,
            int(values.size),
        )


def _spread(
    compared: np.ndarray, center: float, direction: Literal["high", "low", "both"]
) -> float:
    """The robust spread, floored by the tail where the median is a point mass (see the class)."""
    spread = robust_spread(compared, WIDENING)
    if np.mean(compared == center) < POINT_MASS_SHARE:
        return spread
    return max(spread, _tail_spread(compared, center, direction))


def _tail_spread(
    compared: np.ndarray, center: float, direction: Literal["high", "low", "both"]
) -> float:
    """Sigma implied by the distance from the median to the abnormal side's tail percentile: the
    99th, or the 99.9th where more than 99 % of the population sits at the median."""
    for percentile in TAIL_PERCENTILES:
        low, high = np.percentile(compared, [100 - percentile, percentile])
        distance = {
            "high": high - center,
            "low": center - low,
            "both": max(high - center, center - low),
        }
        spread = float(distance[direction]) / NormalDist().inv_cdf(percentile / 100)
        if spread > MIN_SPREAD * max(1.0, abs(center)):
            return spread
    return 0.0


def comparison_scale(values: np.ndarray, log: bool) -> np.ndarray:
    """``log1p`` of the (non-negative by contract) values, or the values themselves."""
    return np.log1p(np.maximum(values, 0.0)) if log else values
