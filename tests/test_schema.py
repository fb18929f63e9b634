"""The canonical raw event contract: conform() and the pandera model's readable rejections."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandera.errors
import polars as pl
import pytest

from anomaly_pipeline.event_contract import RawEventsModel, raw_events_schema
from anomaly_pipeline.schema import RAW_EVENT_SCHEMA, NumericBounds, conform

T = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _frame(**overrides: list) -> pl.DataFrame:
    base = {
        "event_id": ["a", "b"],
        "event_time": [T, T],
        "user_id": ["u1", "u2"],
        "event_type": ["view", "purchase"],
        "amount": [None, 12.5],
        "rating": [None, None],
    }
    return conform(pl.DataFrame({**base, **overrides}))


def test_conform_adds_missing_nullable_columns_in_contract_order() -> None:
    frame = _frame()
    assert frame.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert RawEventsModel.validate(frame).height == 2


def test_conform_names_missing_required_columns() -> None:
    with pytest.raises(ValueError, match=r"\['user_id'\]"):
        conform(pl.DataFrame({"event_id": ["a"], "event_time": [T], "event_type": ["view"]}))


@pytest.mark.parametrize(
    ("overrides", "column", "rule"),
    [
        ({"event_type": ["view", "teleport"]}, "event_type", "isin"),
        ({"amount": [None, -1.0]}, "amount", "in_range(0, 1000000000.0)"),
        ({"amount": [None, float("inf")]}, "amount", "in_range(0, 1000000000.0)"),
        ({"rating": [None, 9]}, "rating", "in_range(1, 5)"),
        ({"user_id": ["u1", None]}, "user_id", "not_nullable"),
    ],
)
def test_malformed_frame_is_rejected_naming_column_and_rule(
    overrides: dict, column: str, rule: str
) -> None:
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        RawEventsModel.validate(_frame(**overrides), lazy=True)
    message = str(caught.value)
    assert column in message and rule in message


def _table(event_days: list[date], event_ids: list[str]) -> pl.DataFrame:
    return _frame(event_id=event_ids).with_columns(
        event_day=pl.Series(event_days, dtype=pl.Date),
        source_file=pl.lit("events.csv"),
        loaded_at=pl.lit(T),
    )


def test_stored_event_ids_are_unique_per_day_not_across_days() -> None:
    first, second = date(2026, 11, 1), date(2026, 11, 2)
    raw_events_schema().validate(_table([first, second], ["a", "a"]))
    with pytest.raises(pandera.errors.SchemaErrors, match="multiple_fields_uniqueness"):
        raw_events_schema().validate(_table([first, first], ["a", "a"]), lazy=True)


def test_stored_amounts_follow_the_configured_bound() -> None:
    frame = _table([date(2026, 11, 1)] * 2, ["a", "b"]).with_columns(amount=pl.Series([None, 5e9]))
    with pytest.raises(pandera.errors.SchemaErrors, match="amount"):
        raw_events_schema().validate(frame, lazy=True)
    raw_events_schema(NumericBounds(max_amount=1e10)).validate(frame)
