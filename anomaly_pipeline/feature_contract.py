"""The contract of ``features.user_day_features``: one row per (user_key, event_day).

Built by the dbt model ``dbt_features/models/marts/user_day_features.sql`` and read by training
and scoring. The columns, their order and the values each definition guarantees come from the
feature catalogue (``anomaly_pipeline.features.catalogue``); every feature is a non-null float
(Float64), so a model can take the columns as one matrix, and a value outside its range means a
bug upstream, not unusual behaviour. Every feature is also finite: ``ge=0`` alone lets inf through
(a sum of absurd amounts overflows), and one inf would score its user-day as normal as any other.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

import pandera.polars as pa
import polars as pl
from pandera.polars import PolarsData

from anomaly_pipeline.features.catalogue import (
    FEATURE_COLUMNS,
    FEATURES,
    HISTORY_WINDOW_DAYS,
    KEY_COLUMNS,
    NO_PURCHASE_DELAY_S,
    Check,
)

__all__ = [
    "FEATURE_COLUMNS",
    "HISTORY_FEATURES",
    "HISTORY_WINDOW_DAYS",
    "KEY_COLUMNS",
    "NO_PURCHASE_DELAY_S",
    "USER_DAY_FEATURES_SCHEMA",
    "full_history_from",
    "validate_features",
]


def _finite(data: PolarsData) -> pl.LazyFrame:
    """No inf and no NaN in a feature."""
    return data.lazyframe.select(pl.col(data.key).is_finite())


def _checks(check: Check) -> list[pa.Check]:
    """The pandera checks of a catalogue ``Check``, plus finiteness."""
    return [*_bounds(check), pa.Check(_finite, name="finite")]


def _bounds(check: Check) -> list[pa.Check]:
    if check.isin is not None:
        return [pa.Check.isin(list(check.isin))]
    if check.gt is not None:
        lower = pa.Check.gt(check.gt)
    elif check.le is None:
        lower = pa.Check.ge(check.ge)
    else:  # one in_range check, as the report of a bounded column has always read
        return [pa.Check.in_range(min_value=check.ge, max_value=check.le)]
    return [lower] if check.le is None else [lower, pa.Check.le(check.le)]


#: pandera contract of ``user_day_features``: the keys, then the catalogue's features in order.
USER_DAY_FEATURES_SCHEMA: Final = pa.DataFrameSchema(
    {
        "user_key": pa.Column(pl.String, pa.Check.str_length(min_value=1), nullable=False),
        "event_day": pa.Column(pl.Date, nullable=False),
        **{
            feature.name: pa.Column(pl.Float64, _checks(feature.check), nullable=False)
            for feature in FEATURES
        },
    },
    strict=True,
    coerce=False,
    unique=list(KEY_COLUMNS),
    name="UserDayFeaturesModel",
)


#: Features over the trailing HISTORY_WINDOW_DAYS days (the user's own history and the sharing
#: windows; the catalogue's ``windowed``). On the first days of any data they see less than a
#: full window — no history yet, fewer users per device — so their distribution differs from a
#: day with a full window for no reason but the warm-up.
HISTORY_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.windowed)


def full_history_from(first_day: date) -> date:
    """The first day with a full history window in data that starts on ``first_day``; earlier
    days are warm-up days."""
    return first_day + timedelta(days=HISTORY_WINDOW_DAYS)


def validate_features(df: pl.DataFrame) -> pl.DataFrame:
    """Validate a user_day_features frame; raises ``pandera.errors.SchemaErrors`` listing every
    failing column and check at once (lazy), so one run shows the whole damage."""
    return USER_DAY_FEATURES_SCHEMA.validate(df, lazy=True)
