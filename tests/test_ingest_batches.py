"""raw_events reads, cleans, validates and stages a day in batches: bounded memory must not change
a single stored row, a failure in a late batch must leave the previous day untouched, and the
staged batch files (``warehouse.partition_writer``) never outlive a load nor are read as data."""

from __future__ import annotations

import subprocess
import sys
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
    EmptyRedeliveryError,
    accounting_gaps,
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


def _load(
    path: Path, landing: Path, batch_rows: int | None, days: list[date] | None = None
) -> None:
    load_events(
        path,
        landing,
        days or [DAY],
        source_format="canonical",
        pattern="events_{day}.*",
        settle_s=0,
        now=NOW,
        batch_rows=batch_rows,
    )


def _tables(path: Path, days: list[date] | None = None) -> dict[str, pl.DataFrame]:
    """Each table's rows of ``days``, sorted: ingest publishes without keeping row order."""
    tables = {
        table: warehouse.read_days(path, table, days or [DAY])
        for table in (RAW_EVENTS_TABLE, QUARANTINE_TABLE, INGEST_LOG_TABLE)
    }
    return {table: rows.sort(rows.columns) for table, rows in tables.items()}


def _staged_files(path: Path) -> list[str]:
    """Names of the staged batch files next to the warehouse, and of their folder."""
    folder = warehouse.staging_dir(path)
    return [folder.name, *sorted(f.name for f in folder.iterdir())] if folder.exists() else []


#: A writer killed after staging rows (``os._exit``: no clean-up runs), as raw_events would be.
_KILLED_WRITER = """
import os, sys
import polars as pl
from anomaly_pipeline import warehouse
from anomaly_pipeline.cleaning import QUARANTINE_SCHEMA
from anomaly_pipeline.ingest import QUARANTINE_TABLE, RAW_EVENTS_TABLE
from anomaly_pipeline.schema import RAW_TABLE_SCHEMA
rows = pl.read_parquet(sys.argv[2])
tables = {RAW_EVENTS_TABLE: RAW_TABLE_SCHEMA, QUARANTINE_TABLE: QUARANTINE_SCHEMA}
with warehouse.partition_writer(sys.argv[1], tables, [rows["event_day"][0]]) as writer:
    writer.insert(RAW_EVENTS_TABLE, rows)
    os._exit(0)
"""


def _kill_a_writer_after_staging(path: Path, rows: pl.DataFrame, tmp_path: Path) -> None:
    rows.write_parquet(tmp_path / "staged.parquet")
    subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path), str(tmp_path / "staged.parquet")],
        check=True,
    )


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
        assert batched[table].equals(whole[table]), table  # the same rows
    assert accounting_gaps(tmp_path / "batched.duckdb", [DAY]) == {}  # accepted + quarantined
    assert _staged_files(tmp_path / "batched.duckdb") == []
    quarantined = whole[QUARANTINE_TABLE]
    assert quarantined.height == 10 and whole[RAW_EVENTS_TABLE].height == 13
    reasons = dict(zip(quarantined["raw_record"], quarantined["reason"], strict=True))
    assert any("repeats an earlier accepted row of this file" in r for r in reasons.values())
    assert any(f"already accepted from file events_{DAY}.a.csv" in r for r in reasons.values())


@pytest.mark.parametrize(
    ("next_day_file", "error", "message"),
    [
        ("not,the,canonical,columns\n1,2,3,4\n", MalformedSourceError, f"events_{NEXT_DAY}.csv"),
        # header only while the warehouse holds the day: refused after every batch was staged
        (HEADER + "\n", EmptyRedeliveryError, f"day {NEXT_DAY}: landing file"),
    ],
)
def test_a_failure_after_written_batches_leaves_every_day_as_it_was(
    tmp_path: Path, next_day_file: str, error: type[Exception], message: str
) -> None:
    landing = tmp_path / "landing"
    _day_files(landing)
    (landing / f"events_{NEXT_DAY}.csv").write_text(
        f"{HEADER}\nn1,{NEXT_DAY}T09:00:00Z,user-1,view,,10.0.0.1\n"
    )
    path = tmp_path / "warehouse.duckdb"
    _load(path, landing, 2, [DAY, NEXT_DAY])
    before = _tables(path, [DAY, NEXT_DAY])
    # Day one now has fewer rows and the next day's file is malformed or empty: the range run
    # stages day one's batches, then fails on the next day, and nothing it wrote may stay.
    (landing / f"events_{DAY}.b.csv").unlink()
    (landing / f"events_{NEXT_DAY}.csv").write_text(next_day_file)
    with pytest.raises(error, match=message):
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
    after = _tables(path, [DAY, NEXT_DAY])
    for table in before:
        assert after[table].equals(before[table]), table
    assert _staged_files(path) == []


def test_rows_a_killed_load_staged_are_dropped_unread(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _day_files(landing)
    clean = tmp_path / "clean.duckdb"
    _load(clean, landing, 3)
    path = tmp_path / "warehouse.duckdb"
    _load(path, landing, 3)
    # A killed run staged a copy of e2 from another file (had it been read, the landing e2 would
    # be quarantined as a copy of it) and an id the landing files do not hold.
    stored = _tables(path)[RAW_EVENTS_TABLE]
    ghosts = stored.filter(pl.col("event_id").is_in(["e1", "e2"])).with_columns(
        event_id=pl.when(pl.col("event_id") == "e1").then(pl.lit("ghost")).otherwise("event_id"),
        source_file=pl.lit("killed.csv"),
    )
    _kill_a_writer_after_staging(path, ghosts, tmp_path)
    assert len(_staged_files(path)) == 2  # the folder and its one batch outlived the kill
    _load(path, landing, 3)
    after, expected = _tables(path), _tables(clean)
    for table in expected:
        assert after[table].equals(expected[table]), table
    assert "killed.csv" not in str(after[QUARANTINE_TABLE]["reason"].to_list())
    assert _staged_files(path) == []


def test_rerunning_a_batched_load_stores_each_row_once(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _day_files(landing)
    once, twice = tmp_path / "once.duckdb", tmp_path / "twice.duckdb"
    _load(once, landing, 2)
    for _ in range(2):
        _load(twice, landing, 2)
    first, again = _tables(once), _tables(twice)
    for table in first:
        assert again[table].equals(first[table]), table
    assert accounting_gaps(twice, [DAY]) == {}
