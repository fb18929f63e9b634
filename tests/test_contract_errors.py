"""Contract failures read as file, day, column, rule and at most five examples — never a dump."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from anomaly_pipeline.contract_errors import MAX_EXAMPLES, ContractViolation, validate_or_explain
from anomaly_pipeline.event_contract import raw_events_schema
from anomaly_pipeline.schema import conform

DAY = date(2026, 10, 3)
T = datetime(2026, 10, 3, 12, tzinfo=UTC)


def _stored(n: int, **columns: list) -> pl.DataFrame:
    base = {
        "event_id": [f"e{i}" for i in range(n)],
        "event_time": [T] * n,
        "user_id": ["u"] * n,
        "event_type": ["purchase"] * n,
    }
    return conform(pl.DataFrame({**base, **columns})).with_columns(
        event_day=pl.lit(DAY),
        source_file=pl.Series([f"events_{DAY}_a.csv"] * (n - 1) + [f"events_{DAY}_b.csv"]),
        loaded_at=pl.lit(T),
    )


def test_a_failure_names_file_day_column_rule_and_five_examples() -> None:
    frame = _stored(
        8,
        amount=[float(-i) - 1 for i in range(7)] + [1e12],
        event_id=["x"] * 2 + [f"e{i}" for i in range(6)],
    )
    with pytest.raises(ContractViolation) as raised:
        validate_or_explain(raw_events_schema(), frame, table="raw.raw_events", context=frame)
    message = str(raised.value)
    lines = message.splitlines()
    assert lines[0] == "raw.raw_events contract failed:"
    amount_a = next(line for line in lines if "amount" in line and "_a.csv" in line)
    assert (
        f"file events_{DAY}_a.csv, day {DAY}: column amount fails in_range(0, 1000000000.0) "
        "on 7 row(s), e.g. [-1.0, -2.0, -3.0, -4.0, -5.0]" in amount_a
    )
    assert f"file events_{DAY}_b.csv, day {DAY}: column amount" in message
    assert "1000000000000.0" in message
    unique = next(line for line in lines if "uniqueness" in line)
    assert (
        f"column event_day, event_id fails multiple_fields_uniqueness on 2 row(s), "
        f"e.g. [event_day={DAY}, event_id=x]" in unique
    )
    assert "failure_case" not in message and '{"' not in message  # no pandera table, no JSON rows
    assert MAX_EXAMPLES == 5
