"""Reason codes: why a user-day scored high, in words an analyst can act on.

``statistics`` (population statistics per feature), ``templates`` (how each feature or fact
reads, from the feature catalogue) and ``coder`` (``ReasonCoder``: strengths, grouping, ranking,
persistence).
"""

from anomaly_pipeline.reasons.coder import CODER_FORMAT, Explanation, Reason, ReasonCoder
from anomaly_pipeline.reasons.statistics import FeatureStats
from anomaly_pipeline.reasons.templates import TEMPLATED_FEATURES

__all__ = [
    "CODER_FORMAT",
    "TEMPLATED_FEATURES",
    "Explanation",
    "FeatureStats",
    "Reason",
    "ReasonCoder",
]
