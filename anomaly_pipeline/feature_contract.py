"""The contract of ``features.user_day_features``: one row per (user_key, event_day).

Built by the dbt model ``dbt_features/models/marts/user_day_features.sql`` (which documents how
each feature is defined) and read by training and scoring. Every feature is a non-null float
(Float64), so a model can take the columns as one matrix; the ranges below are the ones the
definitions guarantee, so a violation means a bug upstream, not unusual behaviour. Every feature
is also finite: ``ge=0`` alone lets inf through (a sum of absurd amounts overflows), and one inf
would score its user-day as normal as any other.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, ClassVar, Final

import pandera.polars as pa
import polars as pl
from pandera.polars import PolarsData

SECONDS_PER_DAY: Final = 86_400.0
#: first_purchase_delay_s when the user did not sign up and buy the same day (one week).
NO_PURCHASE_DELAY_S: Final = 604_800.0
HISTORY_WINDOW_DAYS: Final = 7

KEY_COLUMNS: Final[tuple[str, str]] = ("user_key", "event_day")
#: Every column but the keys: the features.
_FEATURE_REGEX: Final = f"^(?!({'|'.join(KEY_COLUMNS)})$).+$"


def _count() -> Any:
    return pa.Field(nullable=False, ge=0)


def _at_least_one() -> Any:
    """Counts that are ≥ 1 by construction: a row exists only for a user active that day."""
    return pa.Field(nullable=False, ge=1)


def _non_negative() -> Any:
    return pa.Field(nullable=False, ge=0)


def _share() -> Any:
    return pa.Field(nullable=False, in_range={"min_value": 0, "max_value": 1})


def _within_day_s() -> Any:
    return pa.Field(nullable=False, in_range={"min_value": 0, "max_value": SECONDS_PER_DAY})


def _flag() -> Any:
    return pa.Field(nullable=False, isin=[0.0, 1.0])


def _positive_ratio() -> Any:
    """(value + 1) / (median + 1): always > 0."""
    return pa.Field(nullable=False, gt=0)


class UserDayFeaturesModel(pa.DataFrameModel):
    """pandera contract of ``user_day_features``; field order is the docs/contracts.md order."""

    user_key: str = pa.Field(nullable=False, str_length={"min_value": 1})
    event_day: pl.Date = pa.Field(nullable=False)

    # Counts.
    n_events: float = _at_least_one()
    n_sessions: float = _at_least_one()
    n_views: float = _count()
    n_clicks: float = _count()
    n_searches: float = _count()
    n_favs: float = _count()
    n_carts: float = _count()
    n_purchases: float = _count()
    n_reviews: float = _count()
    n_refunds: float = _count()
    n_coupons: float = _count()
    n_logins: float = _count()
    n_signups: float = _count()

    # Rates / depth / dwell (ratios over counts floored at 1 are not shares: they may exceed 1).
    cart_or_buy_per_view: float = _non_negative()
    cart_to_purchase_rate: float = _non_negative()
    views_per_session: float = _non_negative()
    max_views_per_session: float = _count()
    dwell_mean_s: float = _within_day_s()
    session_duration_mean_s: float = _within_day_s()
    views_per_active_minute: float = _non_negative()

    # Money / reviews.
    purchase_amount_sum: float = _non_negative()
    purchase_amount_mean: float = _non_negative()
    rating_mean: float = pa.Field(nullable=False, in_range={"min_value": 0, "max_value": 5})
    extreme_rating_share: float = _share()

    # Timing.
    interval_mean_s: float = _within_day_s()
    interval_std_s: float = _within_day_s()
    interval_cv: float = _non_negative()
    interval_min_s: float = _within_day_s()
    night_share: float = _share()
    first_purchase_delay_s: float = pa.Field(
        nullable=False, in_range={"min_value": 0, "max_value": NO_PURCHASE_DELAY_S}
    )

    # Breadth / sharing.
    distinct_items: float = _count()
    distinct_categories: float = _count()
    distinct_shops: float = _count()
    distinct_devices: float = _count()
    distinct_ips: float = _count()
    distinct_ip_networks: float = _count()
    users_per_device_day: float = _count()
    users_per_ip_network_day: float = _count()
    users_per_device_window: float = _count()
    users_per_ip_network_window: float = _count()

    # History (the user's trailing days before the day).
    history_days: float = pa.Field(
        nullable=False, in_range={"min_value": 0, "max_value": HISTORY_WINDOW_DAYS}
    )
    events_vs_7d_median: float = _positive_ratio()
    views_vs_7d_median: float = _positive_ratio()
    purchases_vs_7d_median: float = _positive_ratio()
    new_device: float = _flag()
    new_ip_network: float = _flag()

    @pa.check(_FEATURE_REGEX, regex=True, name="finite")
    @classmethod
    def _finite(cls, data: PolarsData) -> pl.LazyFrame:
        """No inf and no NaN in any feature."""
        return data.lazyframe.select(pl.col(data.key).is_finite())

    class Config:
        strict = True
        coerce = False
        unique: ClassVar[list[str]] = list(KEY_COLUMNS)


#: Feature columns in the docs/contracts.md order (the model's field order, minus the keys).
FEATURE_COLUMNS: Final[tuple[str, ...]] = tuple(
    name for name in UserDayFeaturesModel.to_schema().columns if name not in KEY_COLUMNS
)


#: Features over the trailing HISTORY_WINDOW_DAYS days (the user's own history and the sharing
#: windows). On the first days of any data they see less than a full window — no history yet, fewer
#: users per device — so their distribution differs from a day with a full window for no reason
#: but the warm-up.
HISTORY_FEATURES: Final[tuple[str, ...]] = (
    "users_per_device_window", "users_per_ip_network_window", "history_days",
    "events_vs_7d_median", "views_vs_7d_median", "purchases_vs_7d_median",
    "new_device", "new_ip_network",
)


def full_history_from(first_day: date) -> date:
    """The first day with a full history window in data that starts on ``first_day``; earlier
    days are warm-up days."""
    return first_day + timedelta(days=HISTORY_WINDOW_DAYS)


def validate_features(df: pl.DataFrame) -> pl.DataFrame:
    """Validate a user_day_features frame; raises ``pandera.errors.SchemaErrors`` listing every
    failing column and check at once (lazy), so one run shows the whole damage."""
    return UserDayFeaturesModel.validate(df, lazy=True)
