"""The canonical raw event contract that every source is mapped onto (see ../shared/DESIGN.md).

Adapters produce frames with exactly ``RAW_EVENT_SCHEMA``; cleaning splits them into accepted rows
(validated by ``event_contract.RawEventsModel``) and quarantined rows. Labels are a separate
contract: ground truth never travels as a column of the raw log.

This module holds the plain facts (names, types, bounds) and imports no pandera: every Dagster
process imports it while loading the code location, and the pandera models that check them live
in ``anomaly_pipeline.event_contract``, imported by the steps that validate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import polars as pl

EVENT_TYPES: Final[tuple[str, ...]] = (
    "signup",
    "login",
    "view",
    "click",
    "search",
    "fav",
    "cart",
    "purchase",
    "review",
    "refund",
    "coupon",
)

#: Kinds of abnormal behaviour the simulator injects and labels carry; "normal" is never a label.
ANOMALY_TYPES: Final[tuple[str, ...]] = (
    "order_brushing",
    "account_takeover",
    "click_bot",
    "scraping",
    "fake_review",
    "coupon_abuse",
)

#: The type of labels a source gives only as 0/1 (a history file's label column, see onboarding).
REPORTED_ANOMALY: Final = "reported"
#: Every anomaly type a label may carry.
LABEL_TYPES: Final[tuple[str, ...]] = (*ANOMALY_TYPES, REPORTED_ANOMALY)

UTC_MICROS: Final = pl.Datetime("us", "UTC")

RAW_EVENT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "event_id": pl.String(),
    "event_time": UTC_MICROS,
    "user_id": pl.String(),
    "session_id": pl.String(),
    "event_type": pl.String(),
    "item_id": pl.String(),
    "category_id": pl.String(),
    "shop_id": pl.String(),
    "amount": pl.Float64(),
    "quantity": pl.Int64(),
    "device_id": pl.String(),
    "ip": pl.String(),
    "user_agent": pl.String(),
    "channel": pl.String(),
    "rating": pl.Int64(),
}

RAW_EVENT_COLUMNS: Final[tuple[str, ...]] = tuple(RAW_EVENT_SCHEMA)

LABEL_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_id": pl.String(),
    "event_day": pl.Date(),
    "anomaly_type": pl.String(),
}

#: Longest accepted value of any free-text column; longer values are quarantined, not truncated.
MAX_STRING_LENGTH: Final[int] = 512

#: The stored table adds where each row came from to the canonical columns.
RAW_TABLE_SCHEMA: Final[dict[str, pl.DataType]] = {
    **RAW_EVENT_SCHEMA,
    "event_day": pl.Date(),
    "source_file": pl.String(),
    "loaded_at": UTC_MICROS,
}
#: An event id is unique within its partition day; sources that restart ids daily repeat them
#: across days, so every key downstream pairs the id with the day.
EVENT_KEY: Final[tuple[str, str]] = ("event_day", "event_id")


@dataclass(frozen=True)
class NumericBounds:
    """Finite bounds of the canonical numeric columns (configurable per load).

    Why upper bounds: a value such as 1e308 is finite, but summed into a feature it overflows to
    inf and poisons every model that reads it. Rows beyond a bound are quarantined by cleaning;
    the raw_events contract (``event_contract.raw_events_schema``) enforces the same bounds on
    what is stored.
    """

    #: Largest accepted ``amount`` (price × quantity, in the shop's currency).
    max_amount: float = 1e9
    #: Largest accepted ``quantity``.
    max_quantity: int = 1_000_000

    def __post_init__(self) -> None:
        for name, value in (("max_amount", self.max_amount), ("max_quantity", self.max_quantity)):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number above 0, got {value}")


DEFAULT_BOUNDS: Final = NumericBounds()
#: ``rating`` is a review's stars: fixed, not configurable.
RATING_RANGE: Final[tuple[int, int]] = (1, 5)


def empty_events() -> pl.DataFrame:
    """A zero-row frame with the canonical schema."""
    return pl.DataFrame(schema=RAW_EVENT_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Select the canonical columns in order, adding missing nullable ones as nulls.

    Raises ``ValueError`` naming the columns when a required column (event_id, event_time,
    user_id, event_type) is absent, because an adapter that loses them is a bug, not bad data.
    """
    required = ("event_id", "event_time", "user_id", "event_type")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"event frame lacks required column(s) {missing}; has {frame.columns}")
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in RAW_EVENT_SCHEMA.items()
    )
