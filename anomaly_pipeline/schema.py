"""The canonical raw event contract that every source is mapped onto (see ../shared/DESIGN.md).

Adapters produce frames with exactly ``RAW_EVENT_SCHEMA``; cleaning splits them into accepted rows
(validated by ``RawEventsModel``) and quarantined rows. Labels are a separate contract: ground truth
never travels as a column of the raw log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Final

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

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
    the raw_events contract (``raw_events_schema``) enforces the same bounds on what is stored.
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


class RawEventsModel(pa.DataFrameModel):
    """pandera contract of an accepted canonical event (numeric bounds: ``DEFAULT_BOUNDS``).

    Ids are unique per partition day, which the stored table's contract (``RawEventsTableModel``)
    checks: a frame of canonical events carries no day.
    """

    event_id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    event_time: DateTime(time_zone="UTC", time_unit="us") = pa.Field(nullable=False)  # type: ignore[valid-type]
    user_id: str = pa.Field(
        nullable=False, str_length={"min_value": 1, "max_value": MAX_STRING_LENGTH}
    )
    session_id: str = pa.Field(nullable=True)
    event_type: str = pa.Field(nullable=False, isin=list(EVENT_TYPES))
    item_id: str = pa.Field(nullable=True)
    category_id: str = pa.Field(nullable=True)
    shop_id: str = pa.Field(nullable=True)
    amount: float = pa.Field(
        nullable=True, in_range={"min_value": 0, "max_value": DEFAULT_BOUNDS.max_amount}
    )
    quantity: int = pa.Field(
        nullable=True, in_range={"min_value": 0, "max_value": DEFAULT_BOUNDS.max_quantity}
    )
    device_id: str = pa.Field(nullable=True)
    ip: str = pa.Field(nullable=True)
    user_agent: str = pa.Field(nullable=True)
    channel: str = pa.Field(nullable=True)
    rating: int = pa.Field(
        nullable=True, in_range={"min_value": RATING_RANGE[0], "max_value": RATING_RANGE[1]}
    )

    class Config:
        strict = True
        coerce = False


class RawEventsTableModel(RawEventsModel):
    """pandera contract of the stored ``raw.raw_events`` rows: canonical events plus provenance,
    one row per (event_day, event_id)."""

    event_day: pl.Date = pa.Field(nullable=False)
    source_file: str = pa.Field(nullable=False, str_length={"min_value": 1})
    loaded_at: DateTime(time_zone="UTC", time_unit="us") = pa.Field(nullable=False)  # type: ignore[valid-type]

    class Config:
        unique: ClassVar[list[str]] = list(EVENT_KEY)


def raw_events_schema(bounds: NumericBounds = DEFAULT_BOUNDS) -> pa.DataFrameSchema:
    """The stored table's contract under ``bounds`` (the model itself holds the defaults)."""
    schema = RawEventsTableModel.to_schema()
    if bounds == DEFAULT_BOUNDS:
        return schema
    return schema.update_columns(
        {
            "amount": {"checks": [pa.Check.in_range(0, bounds.max_amount)]},
            "quantity": {"checks": [pa.Check.in_range(0, bounds.max_quantity)]},
        }
    )


class LabelsModel(pa.DataFrameModel):
    """pandera contract of the labels source: one row per abnormal (user, day)."""

    user_id: str = pa.Field(nullable=False, str_length={"min_value": 1})
    event_day: pl.Date = pa.Field(nullable=False)
    anomaly_type: str = pa.Field(nullable=False, isin=list(LABEL_TYPES))

    class Config:
        strict = True
        unique: ClassVar[list[str]] = ["user_id", "event_day"]
