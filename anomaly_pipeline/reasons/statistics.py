"""Population statistics of one feature over the training window, for z-scores and texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np

from anomaly_pipeline.robust_scale import WIDENING, robust_spread


@dataclass(frozen=True)
class FeatureStats:
    """Summary of one feature over the applicable training rows.

    ``median`` and the quantiles are in the feature's own units (for the texts); ``center`` and
    ``scale`` are the median and a sigma-equivalent spread on the comparison scale (``log1p``
    for skewed features, see the catalogue's ``log``), from which the z-scores are taken. The
    spread widens its quantile range for zero-inflated features (``robust_scale.WIDENING``).
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
    def of(cls, values: np.ndarray, log: bool) -> Self:
        q25, median, q75, q99 = np.quantile(values, [0.25, 0.50, 0.75, 0.99])
        compared = comparison_scale(values, log)
        return cls(
            float(median),
            float(q25),
            float(q75),
            float(q99),
            float(np.median(compared)),
            robust_spread(compared, WIDENING),
            log,
            int(values.size),
        )


def comparison_scale(values: np.ndarray, log: bool) -> np.ndarray:
    """``log1p`` of the (non-negative by contract) values, or the values themselves."""
    return np.log1p(np.maximum(values, 0.0)) if log else values
