"""raw_events reads, cleans, validates and writes a day in batches: bounded memory must not change
a single stored row, and a failure in a late batch must leave the previous day untouched."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import MalformedSourceError
from anomaly_pipeline.ingest import (
    INGEST_LOG_TABLE,
    QUARANTINE_TABLE,
    RAW_EVENTS_TABLE,
    load_events,
)

DAY = date(2026, 10, 3)
NEXT_DAY = DAY + timedelta(days=1)
NOW = datetime(2026, 10, 5, tzinfo=UTC)
HEADER = "event_id,event_time,user_id,event_type,amount,ip"


def _day_files(landing: Path) -> None:
    """Two files of one day with every kind of row a batch boundary could split differently:
    repeats of an id within a file (the first copy broken, or both valid), a copy of an id
    accepted from the earlier file, and rows failing other rules."""
    first = [f"e{i},{DAY}T10:{i:02d}:00Z,user-{i % 4},view,,10.0.0.{i}" for i in range(1, 12)] + [
        f"e3,{DAY}T11:00:00Z,user-3,view,,10.0.0.3",  # repeats e3 of this file (an earlier batch)
        f"e20,{DAY}T11:01:00Z,user-1,purchase,-5,10.0.0.9",  # negative amount
        f"e20,{DAY}T11:02:00Z,user-1,purchase,5,10.0.0.9",  # valid copy after a broken one
        "e21,not a time,user-2,view,,10.0.0.1",
        f"e22,{DAY}T11:03:00Z,,view,,10.0.0.1",  # no user
        f"e23,{DAY}T11:04:00Z,user-2,teleport,,10.0.0.1",
        f"e24,{DAY}T11:05:00Z,user-2,view,,999.1.1.1",
        f"e5,{DAY}T11:06:00Z,user-2,view,,10.0.0.5",  # repeats e5 of this file
    ]
    second = [
        f"e2,{DAY}T12:00:00Z,user-2,view,,10.0.0.2",  # already accepted from the first file
        f"e30,{DAY}T12:01:00Z,user-3,cart,,10.0.0.3",
        f"e30,{DAY}T12:02:00Z,user-3,cart,,10.0.0.3",
        "e31,2026-10-04T00:00:01Z,user-3,view,,10.0.0.3",  # another day
    ]
    landing.mkdir(parents=True, exist_ok=True)
    (landing / f"events_{DAY}.a.csv").write_text("\n".join([HEADER, *first]) + "\n")
    (landing / f"events_{DAY}.b.csv").write_text("\n".join([HEADER, *second]) + "\n")


def _load(path: Path, landing: Path, batch_rows: int | None) -> None:
    load_events(
        path,
        landing,
        [DAY],
        source_format="canonical",
        pattern="events_{day}.*",
        settle_s=0,
        now=NOW,
        batch_rows=batch_rows,
    )


def _tables(path: Path) -> dict[str, pl.DataFrame]:
    return {
        table: warehouse.read_days(path, table, [DAY])
        for table in (RAW_EVENTS_TABLE, QUARANTINE_TABLE, INGEST_LOG_TABLE)
    }


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 7])
def test_batched_ingest_stores_exactly_the_rows_of_a_whole_file_ingest(
    tmp_path: Path, batch_rows: int
) -> None:
    landing = tmp_path / "landing"
    _day_files(landing)
    _load(tmp_path / "whole.duckdb", landing, None)
    _load(tmp_path / "batched.duckdb", landing, batch_rows)
    whole, batched = _tables(tmp_path / "whole.duckdb"), _tables(tmp_path / "batched.duckdb")
    for table in whole:
        assert batched[table].equals(whole[table]), table  # same rows, same order
    quarantined = whole[QUARANTINE_TABLE]
    assert quarantined.height == 10 and whole[RAW_EVENTS_TABLE].height == 13
    reasons = dict(zip(quarantined["raw_record"], quarantined["reason"], strict=True))
    assert any("repeats an earlier accepted row of this file" in r for r in reasons.values())
    assert any(f"already accepted from file events_{DAY}.a.csv" in r for r in reasons.values())


def test_a_failure_after_written_batches_leaves_every_day_as_it_was(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _day_files(landing)
    path = tmp_path / "warehouse.duckdb"
    _load(path, landing, 2)
    before = _tables(path)
    # Day one now has fewer rows and the next day's file is malformed: the range run writes day
    # one's batches, then fails on the next day, and nothing it wrote may stay.
    (landing / f"events_{DAY}.b.csv").unlink()
    (landing / f"events_{NEXT_DAY}.csv").write_text("not,the,canonical,columns\n1,2,3,4\n")
    with pytest.raises(MalformedSourceError, match=f"events_{NEXT_DAY}.csv"):
        load_events(
            path,
            landing,
            [DAY, NEXT_DAY],
            source_format="canonical",
            pattern="events_{day}.*",
            settle_s=0,
            now=NOW,
            batch_rows=2,
        )
    after = _tables(path)
    for table in before:
        assert after[table].equals(before[table]), table
