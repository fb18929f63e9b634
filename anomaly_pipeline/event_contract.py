"""pandera contracts of the accepted events, the stored ``raw.raw_events`` rows and the labels.

Built from the plain facts of ``anomaly_pipeline.schema``; kept apart from them because importing
pandera costs about a second, which only the steps that validate should pay.
"""

from __future__ import annotations

from typing import ClassVar

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

from anomaly_pipeline.schema import (
    DEFAULT_BOUNDS,
    EVENT_KEY,
    EVENT_TYPES,
    LABEL_TYPES,
    MAX_STRING_LENGTH,
    RATING_RANGE,
    NumericBounds,
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
