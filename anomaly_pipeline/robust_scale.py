"""One robust spread for every consumer: the detectors' ``FeatureScaler`` and the reason coder.

A sigma-equivalent spread: a quantile range divided by that range's width on a standard normal
(IQR / 1.349 for the quartiles), so a robust z-score reads like a normal one. Where a range is
zero — a count that is 0 for most users, a 0/1 flag — the next (wider) range in the caller's
list is tried, then the standard deviation, then 1 (a numerically constant column: any deviation
is new, and one unit per sigma keeps z-scores finite and ordered by the size of the deviation).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Final

import numpy as np

#: Percentile pairs tried in order; the detectors use the IQR alone.
IQR: Final[tuple[tuple[float, float], ...]] = ((25.0, 75.0),)
#: The reason coder widens to the 10–90 and 1–99 ranges before the std: a zero-inflated count
#: then gets a scale from its own tail instead of one set by a few extreme training rows.
WIDENING: Final[tuple[tuple[float, float], ...]] = ((25.0, 75.0), (10.0, 90.0), (1.0, 99.0))
#: Spread (relative to max(1, |median|)) below which a column has no spread at all.
MIN_SPREAD: Final[float] = 1e-9


def normal_width(low: float, high: float) -> float:
    """Width of the ``low``–``high`` percentile range of a standard normal (IQR: 1.349)."""
    normal = NormalDist()
    return normal.inv_cdf(high / 100) - normal.inv_cdf(low / 100)


def robust_spread(column: np.ndarray, ranges: Sequence[tuple[float, float]] = IQR) -> float:
    """The first positive normalised quantile range of ``column``, else its std, else 1."""
    floor = MIN_SPREAD * max(1.0, abs(float(np.median(column))))
    for low, high in ranges:
        q_low, q_high = np.percentile(column, [low, high])
        spread = float((q_high - q_low) / normal_width(low, high))
        if spread > floor:
            return spread
    std = float(column.std())
    return std if std > floor else 1.0
