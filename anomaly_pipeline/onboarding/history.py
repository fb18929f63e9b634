"""Splitting a history file of any number of days into landing day files (domain core).

Why canonical day files: onboarding parses each row's time once, with the source's time format and
time zone, and writes the events of each UTC day to ``events_<day>.<source>.parquet`` in
``landing/events`` — canonical columns, ``event_time`` typed in UTC, every other value as the
source's text so that cleaning still judges it. A copy of the *source rows* per day would not do:
one source row can hold events of two days (a fraud_log signup and its purchase), and the half of
it on the other day would be quarantined as ``out_of_partition``. Here every event lands on the
day it happened, and ``raw_events`` reads the files with the canonical adapter.

Rows whose time does not parse (or is missing) have no day, yet must be accounted for. They go,
with the time as the source wrote it, to ``events_<first day>.<source>.undated.parquet``:
``raw_events`` loads that file with the first day of the data and parses its times again with the
source's time format (``SourceReader``; typed day files are unaffected), so cleaning quarantines
them as ``bad_event_time`` with a reason naming the expected format, and accepted + quarantined =
input holds in the warehouse as for any landing file. Times that parse but lie before 2000 or in
the future have no usable day either; they stay typed in the first day's file, where cleaning
quarantines them as too old / future. When no time parses at all the time format is wrong:
nothing is written and the error shows sample values.

The file is read in batches (``SourceReader.frames``); each batch's events are buffered per day and
spilled to part files under a hidden work directory, so memory holds one batch plus the buffer,
and then one day at a time when the day files are assembled. Day files are written atomically and
left untouched when identical, so onboarding the same file twice changes nothing.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline.adapters import SourceReader
from anomaly_pipeline.adapters.timestamps import parse_iso8601
from anomaly_pipeline.cleaning import DEFAULT_MAX_FUTURE, EARLIEST_EVENT_TIME
from anomaly_pipeline.landing import write_parquet_atomic
from anomaly_pipeline.schema import LABEL_SCHEMA, RAW_EVENT_COLUMNS, REPORTED_ANOMALY, UTC_MICROS

DEFAULT_BATCH_ROWS: Final = 200_000
#: Buffered events above which the per-day buffers are spilled to part files.
DEFAULT_SPILL_ROWS: Final = 1_000_000
_SAMPLES: Final = 3
_TIME, _DAY, _LABEL = "__time", "__day", "__label"
_NAME_CHARACTERS: Final = re.compile(r"[^A-Za-z0-9_-]+")
_TRUE_LABELS: Final = ("1", "1.0", "true", "yes")


class UnparsableTimesError(ValueError):
    """No row of the file has a time the source's time format can read."""


@dataclass
class SplitReport:
    """What splitting one history file wrote."""

    source: str
    rows: int = 0
    events: int = 0
    undated_events: int = 0
    days: list[date] = field(default_factory=list)
    events_per_day: dict[date, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    files_written: int = 0
    files_unchanged: int = 0
    labelled_user_days: int | None = None


def source_name(path: Path, name: str | None = None) -> str:
    """The source's name in day-file names: ``name`` or the file's stem, cut to [A-Za-z0-9_-]."""
    cleaned = _NAME_CHARACTERS.sub("-", name if name is not None else Path(path).stem).strip("-")
    if not cleaned:
        raise ValueError(f"source name {name!r} has no letter or digit")
    return cleaned


def day_file(landing_events: Path, day: date, source: str) -> Path:
    return landing_events / f"events_{day.isoformat()}.{source}.parquet"


def undated_file(landing_events: Path, day: date, source: str) -> Path:
    return landing_events / f"events_{day.isoformat()}.{source}.undated.parquet"


def label_file(landing_labels: Path, day: date, source: str) -> Path:
    """The source's label file of ``day``; named per source, so that two sources' labels of a
    day never overwrite each other (``ingest.load_labels`` reads every ``labels_<day>*``)."""
    return landing_labels / f"labels_{day.isoformat()}.{source}.parquet"


def _label_flag(column: str) -> pl.Expr:
    """Whether the row's label column (read back from ``raw_record``) says abnormal."""
    value = (
        pl.col("raw_record").str.json_decode(pl.Struct({column: pl.String()})).struct.field(column)
    )
    return value.str.strip_chars().str.to_lowercase().is_in(_TRUE_LABELS).fill_null(False)


class _DayParts:
    """Per-day event buffers spilled to numbered Parquet parts (input order is kept)."""

    def __init__(self, directory: Path, spill_rows: int) -> None:
        self.directory, self.spill_rows = directory, spill_rows
        self.buffers: dict[str, list[pl.DataFrame]] = {}
        self.parts: dict[str, list[Path]] = {}
        self.buffered = 0

    def add(self, key: str, frame: pl.DataFrame) -> None:
        if frame.height:
            self.buffers.setdefault(key, []).append(frame)
            self.buffered += frame.height
        if self.buffered >= self.spill_rows:
            self.spill()

    def spill(self) -> None:
        for key, frames in self.buffers.items():
            part = self.directory / f"{key}-{len(self.parts.get(key, []))}.parquet"
            pl.concat(frames).write_parquet(part)
            self.parts.setdefault(key, []).append(part)
        self.buffers, self.buffered = {}, 0

    def keys(self) -> set[str]:
        return set(self.parts) | set(self.buffers)

    def read(self, key: str) -> pl.DataFrame | None:
        frames = [pl.read_parquet(p) for p in self.parts.get(key, [])] + self.buffers.get(key, [])
        return pl.concat(frames) if frames else None


def split_history(
    reader: SourceReader,
    path: Path,
    *,
    landing_events: Path,
    landing_labels: Path,
    work_dir: Path,
    source: str,
    labels_column: str | None = None,
    now: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    spill_rows: int = DEFAULT_SPILL_ROWS,
) -> SplitReport:
    """Write ``path``'s events as day files (see the module docstring); return what was written.

    With ``labels_column`` that source column (0/1 per row) becomes labels: one
    ``labels_<day>.<source>.parquet`` per day of the data, listing the users with a 1 on the days
    of that row's events (type ``reported``); a day without such users gets an empty file —
    labelled, no abnormal user — which is not the same as no file (unlabelled).
    """
    now = now or datetime.now(UTC)
    latest = now + DEFAULT_MAX_FUTURE
    report = SplitReport(source=source)
    work_dir.mkdir(parents=True, exist_ok=True)
    ignored: dict[str, None] = {}
    samples: list[str] = []
    try:
        parts = _DayParts(work_dir, spill_rows)
        for frame in reader.frames(path, batch_rows):
            extra = [c for c in frame.columns if c not in reader.used_columns and c != "raw_record"]
            if labels_column is not None and labels_column not in frame.columns:
                raise ValueError(
                    f"--labels-column {labels_column!r} is not a column of {path}; "
                    f"it has {[c for c in frame.columns if c != 'raw_record']}"
                )
            ignored.update(dict.fromkeys(extra))
            staged = reader.stage(frame.drop(extra), path)
            report.rows += frame.height
            report.events += staged.height
            timed = staged.with_columns(parse_iso8601(pl.col("event_time")).alias(_TIME))
            undated = timed.filter(pl.col(_TIME).is_null())
            if len(samples) < _SAMPLES:
                samples += undated["event_time"].drop_nulls().head(_SAMPLES).to_list()
            parts.add("undated", undated.select(RAW_EVENT_COLUMNS))
            dated = timed.filter(pl.col(_TIME).is_not_null()).with_columns(
                pl.col(_TIME).alias("event_time")
            )
            usable = pl.col("event_time").is_between(EARLIEST_EVENT_TIME, latest)
            parts.add("spill", dated.filter(~usable).select(RAW_EVENT_COLUMNS))
            in_range = dated.filter(usable).select(
                *RAW_EVENT_COLUMNS,
                pl.col("event_time").dt.date().alias(_DAY),
                *([_label_flag(labels_column).alias(_LABEL)] if labels_column else []),
            )
            for (day,), events in in_range.partition_by(
                _DAY, as_dict=True, maintain_order=True
            ).items():
                parts.add(day.isoformat(), events.drop(_DAY))
        report.ignored_columns = [c for c in ignored if c != labels_column]
        days = sorted(date.fromisoformat(k) for k in parts.keys() - {"undated", "spill"})
        if not days:
            raise UnparsableTimesError(
                f"no event time of {path} could be read as {reader.time_description} (or lies "
                f"between 2000 and now); samples: {samples[:_SAMPLES]} — pass the source's "
                "time format (--time-format, strftime) and time zone (--timezone)"
            )
        _write_day_files(report, parts, days, landing_events, source, labels_column, landing_labels)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return report


def _write_day_files(
    report: SplitReport,
    parts: _DayParts,
    days: list[date],
    landing_events: Path,
    source: str,
    labels_column: str | None,
    landing_labels: Path,
) -> None:
    """Assemble and write every day from the first to the last (a day without events gets an
    empty file, so a range run finds every day), the undated file and the label files."""
    landing_events.mkdir(parents=True, exist_ok=True)
    first = days[0]
    report.days = [first + timedelta(days=i) for i in range((days[-1] - first).days + 1)]
    labels: list[pl.DataFrame] = []
    empty = pl.DataFrame(
        schema={
            name: UTC_MICROS if name == "event_time" else pl.String() for name in RAW_EVENT_COLUMNS
        }
    )
    spill = parts.read("spill")
    for day in report.days:
        events = parts.read(day.isoformat())
        if labels_column is not None and events is not None:
            labels.append(
                events.filter(pl.col(_LABEL)).select(
                    pl.col("user_id").str.strip_chars(),
                    pl.lit(day).alias("event_day"),
                    pl.lit(REPORTED_ANOMALY).alias("anomaly_type"),
                )
            )
        frames = [empty, events, spill if day == first else None]
        day_events = pl.concat(
            [f.select(RAW_EVENT_COLUMNS) for f in frames if f is not None], how="vertical_relaxed"
        )
        report.events_per_day[day] = day_events.height
        _record(report, write_parquet_atomic(day_events, day_file(landing_events, day, source)))
    undated = parts.read("undated")
    report.undated_events = 0 if undated is None else undated.height
    target = undated_file(landing_events, first, source)
    if undated is not None:
        _record(report, write_parquet_atomic(undated.select(RAW_EVENT_COLUMNS), target))
    else:
        target.unlink(missing_ok=True)  # left by an earlier onboarding with a wrong time format
    if labels_column is not None:
        _write_labels(report, labels, landing_labels, source)


def _write_labels(
    report: SplitReport, labels: list[pl.DataFrame], landing_labels: Path, source: str
) -> None:
    landing_labels.mkdir(parents=True, exist_ok=True)
    every = (
        pl.concat(labels)
        .unique(["user_id", "event_day"], maintain_order=True)
        .filter(pl.col("user_id").is_not_null() & (pl.col("user_id") != ""))
        .with_columns(pl.col(c).cast(t) for c, t in LABEL_SCHEMA.items())
    )
    report.labelled_user_days = every.height
    for day in report.days:
        _record(
            report,
            write_parquet_atomic(
                every.filter(pl.col("event_day") == day), label_file(landing_labels, day, source)
            ),
        )


def _record(report: SplitReport, changed: bool) -> None:
    if changed:
        report.files_written += 1
    else:
        report.files_unchanged += 1
