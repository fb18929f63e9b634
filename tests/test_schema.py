"""The canonical raw event contract: conform() and the pandera model's readable rejections."""

from __future__ import annotations

from datetime import datetime, timezone

import pandera.errors
import polars as pl
import pytest

from anomaly_pipeline.schema import RAW_EVENT_SCHEMA, RawEventsModel, conform

T = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


def _frame(**overrides: list) -> pl.DataFrame:
    base = {"event_id": ["a", "b"], "event_time": [T, T], "user_id": ["u1", "u2"],
            "event_type": ["view", "purchase"], "amount": [None, 12.5], "rating": [None, None]}
    return conform(pl.DataFrame({**base, **overrides}))


def test_conform_adds_missing_nullable_columns_in_contract_order() -> None:
    frame = _frame()
    assert frame.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert RawEventsModel.validate(frame).height == 2


def test_conform_names_missing_required_columns() -> None:
    with pytest.raises(ValueError, match=r"\['user_id'\]"):
        conform(pl.DataFrame({"event_id": ["a"], "event_time": [T], "event_type": ["view"]}))


@pytest.mark.parametrize(("overrides", "column", "rule"), [
    ({"event_type": ["view", "teleport"]}, "event_type", "isin"),
    ({"amount": [None, -1.0]}, "amount", "greater_than_or_equal_to(0)"),
    ({"rating": [None, 9]}, "rating", "less_than_or_equal_to(5)"),
    ({"event_id": ["a", "a"]}, "event_id", "field_uniqueness"),
    ({"user_id": ["u1", None]}, "user_id", "not_nullable"),
])
def test_malformed_frame_is_rejected_naming_column_and_rule(overrides: dict, column: str,
                                                            rule: str) -> None:
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        RawEventsModel.validate(_frame(**overrides), lazy=True)
    message = str(caught.value)
    assert column in message and rule in message
