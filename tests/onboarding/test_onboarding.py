"""Onboarding without the runs: time options per adapter, batch reading, day splitting, atomic
and idempotent day files, the undated rows, labels, and loading the day files into DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from conftest import REPO_ROOT
from fraud_log_history import FRAUD_LOG_HEADER, write_fraud_log

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import read_source, source_reader
from anomaly_pipeline.cleaning import clean
from anomaly_pipeline.ingest import QUARANTINE_TABLE, RAW_EVENTS_TABLE, load_events, load_labels
from anomaly_pipeline.landing import write_parquet_atomic
from anomaly_pipeline.onboarding.history import (
    UnparsableTimesError,
    day_file,
    source_name,
    split_history,
    undated_file,
)
from anomaly_pipeline.paths import DataHome, data_home
from anomaly_pipeline.source_settings import SourceSettings, write_source_settings

NOW = datetime(2026, 11, 30, tzinfo=UTC)
US_TIME = "%m/%d/%Y %H:%M"


def _fraud_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """fraud_log rows (user, signup, purchase) with the public data set's other columns."""
    lines = [",".join(FRAUD_LOG_HEADER)]
    lines += [
        f"{user},{signup},{purchase},20,D{user},SEO,Chrome,M,30,732758368.79,"
        f"{1 if user.startswith('f') else 0}"
        for user, signup, purchase in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _utc(staged: pl.DataFrame) -> list[str]:
    return staged["event_time"].to_list()


# --- time format and time zone, per adapter ------------------------------------------------------


def test_fraud_log_reads_us_times_in_a_time_zone(tmp_path: Path) -> None:
    path = _fraud_csv(tmp_path / "f.csv", [("1", "3/5/2025 8:07", "3/6/2025 23:30")])
    staged = read_source("fraud_log", path, time_format=US_TIME, time_zone="Asia/Shanghai")
    assert _utc(staged) == ["2025-03-05T00:07:00.000000+00:00", "2025-03-06T15:30:00.000000+00:00"]
    # without the format the times stay raw text, and cleaning names the expected format
    reader = source_reader("fraud_log")
    result = clean(
        reader.read(path),
        partition_day=date(2025, 3, 5),
        now=NOW,
        source_file="f",
        time_format_description=reader.time_description,
    )
    assert result.accepted.height == 0
    assert set(result.quarantined["rule"]) == {"bad_event_time"}
    assert "does not match the source's time format iso8601" in result.quarantined["reason"][0]


def test_taobao_takes_another_time_format(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("1,10,100,pv,1511658000\n2,11,101,buy,2017-11-26 09:00\n")
    assert _utc(read_source("taobao", path))[0] == "2017-11-26T01:00:00.000000+00:00"
    staged = read_source("taobao", path, time_format="%Y-%m-%d %H:%M", time_zone="Asia/Shanghai")
    assert _utc(staged)[1] == "2017-11-26T01:00:00.000000+00:00"
    assert _utc(staged)[0] == "1511658000"  # kept raw: cleaning quarantines it


def test_canonical_text_times_take_the_format_typed_times_do_not(tmp_path: Path) -> None:
    text = tmp_path / "text.csv"
    text.write_text("event_id,event_time,user_id,event_type\ne1,26.11.2017 09:00,u1,view\n")
    staged = read_source("canonical", text, time_format="%d.%m.%Y %H:%M", time_zone="Europe/Berlin")
    assert _utc(staged) == ["2017-11-26T08:00:00.000000+00:00"]
    typed = tmp_path / "typed.parquet"
    pl.DataFrame(
        {
            "event_id": ["e1"],
            "event_time": [datetime(2017, 11, 26, 9)],
            "user_id": ["u1"],
            "event_type": ["view"],
        }
    ).write_parquet(typed)
    # a typed naive time is a wall-clock time in the zone; no strftime pattern applies to it
    staged = read_source(
        "canonical", typed, time_format="%d.%m.%Y %H:%M", time_zone="Europe/Berlin"
    )
    assert _utc(staged) == ["2017-11-26T08:00:00.000000+00:00"]


def test_mapped_options_override_the_mapping(tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "columns: {who: user_id, what: event_type}\ntimestamp: {column: at, format: iso8601}\n"
    )
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"who": "u1", "what": "view", "at": "11/26/2017 9:00"}) + "\n")
    staged = read_source(
        "mapped", data, mapping=mapping, time_format=US_TIME, time_zone="America/New_York"
    )
    assert _utc(staged) == ["2017-11-26T14:00:00.000000+00:00"]


def test_bad_time_options_are_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="time format '%Q'"):
        source_reader("fraud_log", time_format="%Q")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        source_reader("taobao", time_zone="Mars/Olympus")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_reading_in_batches_equals_reading_whole(tmp_path: Path, suffix: str) -> None:
    events = pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(25)],
            "event_time": [f"2017-11-26T09:{i:02d}:00+00:00" for i in range(25)],
            "user_id": [f"u{i % 4}" for i in range(25)],
            "event_type": ["view"] * 25,
        }
    )
    path = tmp_path / f"events{suffix}"
    {".csv": events.write_csv, ".jsonl": events.write_ndjson, ".parquet": events.write_parquet}[
        suffix
    ](path)
    reader = source_reader("canonical")
    batches = [reader.stage(frame, path) for frame in reader.frames(path, batch_rows=10)]
    assert [b.height for b in batches] == [10, 10, 5]
    assert pl.concat(batches).equals(reader.read(path))


# --- splitting into day files --------------------------------------------------------------------


def _split(
    home: DataHome,
    path: Path,
    *,
    source_format: str = "fraud_log",
    time_format: str | None = US_TIME,
    **options: object,
):
    reader = source_reader(
        source_format, time_format=time_format, time_zone=options.pop("time_zone", None)
    )
    return split_history(
        reader,
        path,
        landing_events=home.landing_events,
        landing_labels=home.landing_labels,
        work_dir=home.root / ".work",
        source=options.pop("source", source_name(path)),
        now=NOW,
        **options,
    )


def test_every_event_lands_on_its_own_day(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    path = _fraud_csv(
        tmp_path / "shop.csv",
        [
            ("1", "3/1/2025 23:50", "3/2/2025 0:10"),  # signup and purchase on two days
            ("2", "3/4/2025 10:00", "3/4/2025 10:01"),  # 3/3 has no event: an empty day file
            ("3", "31/31/2025 1:00", "3/4/2025 12:00"),  # signup time unreadable
            ("4", "3/4/2025 9:00", "1/1/1970 0:00"),  # purchase time before 2000
        ],
    )
    report = _split(home, path, batch_rows=2, spill_rows=3)
    assert report.days == [date(2025, 3, d) for d in range(1, 5)]
    assert (report.rows, report.events, report.undated_events) == (4, 8, 1)
    assert report.ignored_columns == ["sex", "age", "class"]
    per_day = {d: pl.read_parquet(day_file(home.landing_events, d, "shop")) for d in report.days}
    assert {d: f.height for d, f in per_day.items()} == {
        date(2025, 3, 1): 2,
        date(2025, 3, 2): 1,
        date(2025, 3, 3): 0,
        date(2025, 3, 4): 4,
    }
    # the 1970 purchase has no usable day: it stays in the first day's file for cleaning to judge
    assert per_day[date(2025, 3, 1)]["user_id"].to_list() == ["1", "4"]
    assert per_day[date(2025, 3, 1)].schema["event_time"] == pl.Datetime("us", "UTC")
    undated = pl.read_parquet(undated_file(home.landing_events, date(2025, 3, 1), "shop"))
    assert undated["event_time"].to_list() == ["31/31/2025 1:00"]
    assert not list(home.root.glob(".work*")) and not list(home.landing_events.glob(".*"))


def test_day_files_load_with_nothing_out_of_partition_and_nothing_lost(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    path = _fraud_csv(
        tmp_path / "shop.csv",
        [
            ("1", "3/1/2025 23:50", "3/2/2025 0:10"),
            ("2", "3/2/2025 10:00", "3/2/2025 10:00"),
            ("3", "31/31/2025 1:00", "3/2/2025 12:00"),
            ("4", "3/1/2025 9:00", "1/1/1970 0:00"),
        ],
    )
    report = _split(home, path, time_zone="Europe/Berlin")
    reader = source_reader("fraud_log", time_format=US_TIME, time_zone="Europe/Berlin")
    ingest = load_events(
        home.warehouse,
        home.landing_events,
        report.days,
        source_format="canonical",
        pattern="events_{day}.*",
        time_format=reader.time_format,
        time_zone=reader.time_zone,
        now=NOW,
    )
    assert ingest.input_rows == report.events == 8
    assert ingest.accepted_rows + ingest.quarantined_rows == 8
    assert dict(ingest.rules) == {"bad_event_time": 1, "event_time_too_old": 1}
    bad = warehouse.read_days(home.warehouse, QUARANTINE_TABLE, report.days)
    reason = bad.filter(pl.col("rule") == "bad_event_time")["reason"][0]
    assert reason == (
        "event_time '31/31/2025 1:00' does not match the source's time format "
        "'%m/%d/%Y %H:%M' in Europe/Berlin"
    )
    raw = warehouse.read_days(home.warehouse, RAW_EVENTS_TABLE, report.days)
    # 23:50 Berlin time on 3/1 is 22:50 UTC, still 3/1; 0:10 on 3/2 is 23:10 UTC on 3/1
    assert raw.filter(pl.col("user_id") == "1")["event_day"].to_list() == [date(2025, 3, 1)] * 2


def test_onboarding_twice_changes_no_file_and_no_table(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    path = write_fraud_log(tmp_path / "shop.csv", rows=300, start=datetime(2025, 3, 1), days=10)

    def onboard() -> dict[str, pl.DataFrame]:
        report = _split(home, path, batch_rows=70, spill_rows=150)
        load_events(
            home.warehouse,
            home.landing_events,
            report.days,
            source_format="canonical",
            pattern="events_{day}.*",
            time_format=US_TIME,
            now=NOW,
        )
        return {
            t: warehouse.read_days(home.warehouse, t, report.days)
            .drop("loaded_at", "quarantined_at", strict=False)
            .sort(pl.all())
            for t in (RAW_EVENTS_TABLE, QUARANTINE_TABLE)
        }

    first = onboard()
    stamps = {p: p.stat().st_mtime_ns for p in home.landing_events.iterdir()}
    second = onboard()
    assert {p: p.stat().st_mtime_ns for p in home.landing_events.iterdir()} == stamps
    assert all(first[t].equals(second[t]) for t in first)
    assert first[RAW_EVENTS_TABLE].height == 600


def test_a_second_file_with_later_days_adds_them(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    early = _split(
        home, _fraud_csv(tmp_path / "march.csv", [("1", "3/1/2025 9:00", "3/2/2025 9:00")])
    )
    late = _split(
        home, _fraud_csv(tmp_path / "april.csv", [("2", "4/1/2025 9:00", "4/1/2025 9:05")])
    )
    assert late.days == [date(2025, 4, 1)]
    assert sorted(p.name for p in home.landing_events.iterdir()) == [
        "events_2025-03-01.march.parquet",
        "events_2025-03-02.march.parquet",
        "events_2025-04-01.april.parquet",
    ]
    days = [*early.days, *late.days]
    report = load_events(
        home.warehouse,
        home.landing_events,
        days,
        source_format="canonical",
        pattern="events_{day}.*",
        time_format=US_TIME,
        now=NOW,
    )
    assert (report.accepted_rows, report.quarantined_rows) == (4, 0)


def test_labels_column_becomes_labels_of_every_day(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    path = _fraud_csv(
        tmp_path / "shop.csv",
        [("f1", "3/1/2025 9:00", "3/2/2025 9:00"), ("2", "3/2/2025 9:00", "3/3/2025 9:00")],
    )
    report = _split(home, path, labels_column="class")
    assert report.labelled_user_days == 2 and "class" not in report.ignored_columns
    per_day = load_labels(home.warehouse, home.landing_labels, report.days)
    assert per_day == {date(2025, 3, 1): 1, date(2025, 3, 2): 1, date(2025, 3, 3): 0}
    labels = warehouse.read_days(home.warehouse, "raw.event_labels", report.days)
    assert set(labels["user_id"]) == {"f1"} and set(labels["anomaly_type"]) == {"reported"}
    with pytest.raises(ValueError, match="'fraud' is not a column"):
        _split(home, path, labels_column="fraud")


def test_no_readable_time_writes_nothing_and_shows_samples(tmp_path: Path) -> None:
    home = data_home(tmp_path / "home").ensure()
    path = _fraud_csv(tmp_path / "shop.csv", [("1", "3/1/2025 9:00", "3/2/2025 9:00")])
    with pytest.raises(UnparsableTimesError, match=r"iso8601.*'3/1/2025 9:00'.*--time-format"):
        _split(home, path, time_format=None)
    assert not list(home.landing_events.iterdir())


def test_atomic_write_leaves_identical_files_alone(tmp_path: Path) -> None:
    target = tmp_path / "events_2025-03-01.x.parquet"
    frame = pl.DataFrame({"a": [1, 2]})
    assert write_parquet_atomic(frame, target) is True
    stamp = target.stat().st_mtime_ns
    assert write_parquet_atomic(frame, target) is False
    assert target.stat().st_mtime_ns == stamp
    assert write_parquet_atomic(pl.DataFrame({"a": [3]}), target) is True
    assert pl.read_parquet(target)["a"].to_list() == [3]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


# --- partitions from the data home ---------------------------------------------------------------


def _first_partition(home: Path, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "ANOMALY_PIPELINE_START_DATE"}
    code = (
        "from anomaly_pipeline.defs.partitions import daily_partitions;"
        "print(daily_partitions.get_first_partition_key())"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**environment, "ANOMALY_PIPELINE_HOME": str(home), **env},
    ).stdout.strip()


def test_partitions_start_at_the_recorded_first_day(tmp_path: Path) -> None:
    assert _first_partition(tmp_path) == "2025-01-01"
    write_source_settings(data_home(tmp_path), SourceSettings(date(2017, 11, 25), "Asia/Shanghai"))
    assert _first_partition(tmp_path) == "2017-11-25"
    assert _first_partition(tmp_path, ANOMALY_PIPELINE_START_DATE="2017-11-01") == "2017-11-01"


def test_summary_reads_scores_and_guard_back(tmp_path: Path) -> None:
    from anomaly_pipeline.onboarding.summary import score_lines

    home = data_home(tmp_path).ensure()
    days = [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]
    scores = pl.DataFrame(
        {
            "user_key": ["a", "b", "c", "d", "e", "f"],
            "event_day": [d for d in days for _ in "xy"],
            "score": [990.0, 10.0, 500.0, 20.0, 30.0, 40.0],
            "outcome": ["block", *["allow"] * 5],
            "flagged": [True, False, True, True, False, False],
            "reasons": [["spent 8× the median"], [], [], [], [], []],
        }
    )
    guard = pl.DataFrame(
        {
            "event_day": days,
            "passed": [True, False, True],
            "reason": ["ok", "2025-03-02: alerts withheld — PSI 3", "ok"],
        }
    )
    warehouse.replace_partitions(home.warehouse, "scoring.daily_anomaly_scores", scores, days)
    warehouse.replace_partitions(home.warehouse, "scoring.guard", guard, days)
    lines = score_lines(home.warehouse, days, "scoring.guard")
    assert lines[:3] == [
        "Scores: 3 of 3 days, 6 user-days",
        "Flagged share per day: min 0.0% / median 50.0% / max 100.0%",
        "Alert guard: alerts withheld on 1 of 3 days, e.g. 2025-03-02: alerts withheld — PSI 3",
    ]
    assert lines[4].split() == ["a", "2025-03-01", "990.0", "block", "spent", "8×", "the", "median"]
