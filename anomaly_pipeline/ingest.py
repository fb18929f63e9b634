"""Loading one partition range of landing files into the raw tables (domain core, no Dagster).

Why here and not in the asset: the load is the part on-call engineers need to trust (nothing lost,
nothing duplicated), so it is a plain function that tests can call directly; the Dagster asset only
adds configuration and metadata.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import read_source
from anomaly_pipeline.cleaning import QUARANTINE_SCHEMA, clean
from anomaly_pipeline.schema import LABEL_SCHEMA, RAW_EVENT_SCHEMA, LabelsModel, RawEventsModel

RAW_EVENTS_TABLE = "raw.raw_events"
QUARANTINE_TABLE = "raw.quarantined_events"
INGEST_LOG_TABLE = "raw.ingest_log"
LABELS_TABLE = "raw.event_labels"
LABEL_COVERAGE_TABLE = "raw.label_coverage"

RAW_TABLE_SCHEMA: dict[str, pl.DataType] = {
    **RAW_EVENT_SCHEMA, "event_day": pl.Date(), "source_file": pl.String(),
    "loaded_at": pl.Datetime("us", "UTC"),
}
INGEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    "event_day": pl.Date(), "source_file": pl.String(), "input_rows": pl.Int64(),
    "accepted_rows": pl.Int64(), "quarantined_rows": pl.Int64(),
    "loaded_at": pl.Datetime("us", "UTC"),
}


class MissingLandingFileError(FileNotFoundError):
    """A partition day has no landing file: the day cannot be materialised yet."""


@dataclass
class IngestReport:
    """What one load did, per day and in total (becomes Dagster metadata)."""

    input_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    files: list[str] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)


def landing_files(directory: Path, pattern: str, day: date) -> list[Path]:
    """Files of ``directory`` matching ``pattern`` with ``{day}`` replaced by the ISO day."""
    files = sorted(p for p in directory.glob(pattern.format(day=day.isoformat())) if p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise MissingLandingFileError(
            f"no landing file for {day} matching {pattern.format(day=day.isoformat())!r} in {directory}"
        )
    return files


def load_events(warehouse_path: Path, landing_dir: Path, days: list[date], *, source_format: str,
                pattern: str, mapping: Path | None = None, now: datetime | None = None) -> IngestReport:
    """Read, clean and store the landing files of ``days``; replace those partitions atomically.

    Every file is read and cleaned before anything is written, so a malformed file fails the whole
    range and changes no table.
    """
    now = now or datetime.now(timezone.utc)
    report = IngestReport()
    accepted_parts, quarantined_parts, log_rows = [], [], []
    for day in days:
        for path in landing_files(landing_dir, pattern, day):
            staged = read_source(source_format, path, mapping=mapping)
            result = clean(staged, partition_day=day, now=now, source_file=path.name)
            accepted_parts.append(result.accepted.with_columns(
                event_day=pl.lit(day), source_file=pl.lit(path.name),
                loaded_at=pl.lit(now).cast(pl.Datetime("us", "UTC"))))
            quarantined_parts.append(result.quarantined)
            log_rows.append({"event_day": day, "source_file": path.name,
                             "input_rows": staged.height, "accepted_rows": result.accepted.height,
                             "quarantined_rows": result.quarantined.height, "loaded_at": now})
            report.files.append(path.name)
            report.input_rows += staged.height
            report.accepted_rows += result.accepted.height
            report.quarantined_rows += result.quarantined.height
            report.rules.update(result.quarantined["rule"].to_list())
    accepted = pl.concat(accepted_parts) if accepted_parts else pl.DataFrame(schema=RAW_TABLE_SCHEMA)
    RawEventsModel.validate(accepted.select(list(RAW_EVENT_SCHEMA)), lazy=True)
    quarantined = (pl.concat(quarantined_parts) if quarantined_parts
                   else pl.DataFrame(schema=QUARANTINE_SCHEMA))
    log = pl.DataFrame(log_rows, schema=INGEST_LOG_SCHEMA)
    warehouse.replace_partitions(warehouse_path, RAW_EVENTS_TABLE, accepted, days)
    warehouse.replace_partitions(warehouse_path, QUARANTINE_TABLE, quarantined, days)
    warehouse.replace_partitions(warehouse_path, INGEST_LOG_TABLE, log, days)
    return report


def accounting_gaps(warehouse_path: Path, days: list[date]) -> dict[date, tuple[int, int]]:
    """Days where accepted + quarantined rows differ from the logged input: day → (stored, input)."""
    stored_ok = warehouse.count_by_day(warehouse_path, RAW_EVENTS_TABLE, days)
    stored_bad = warehouse.count_by_day(warehouse_path, QUARANTINE_TABLE, days)
    logged = warehouse.read_days(warehouse_path, INGEST_LOG_TABLE, days)
    inputs = ({d: 0 for d in days} if logged.is_empty() else
              dict(logged.group_by("event_day").agg(pl.col("input_rows").sum()).iter_rows()))
    return {day: (stored_ok[day] + stored_bad[day], inputs.get(day, 0)) for day in days
            if stored_ok[day] + stored_bad[day] != inputs.get(day, 0)}


def load_labels(warehouse_path: Path, labels_dir: Path, days: list[date], *,
                pattern: str = "labels_{day}.parquet") -> dict[date, int | None]:
    """Store the label files of ``days``; return labels per day (None = day not labelled).

    A day without a label file is *unlabelled* (quality cannot be measured on it), which is not the
    same as a labelled day without abnormal users; ``raw.label_coverage`` records the difference.
    """
    frames, coverage = [], []
    for day in days:
        matches = sorted(labels_dir.glob(pattern.format(day=day.isoformat())))
        if not matches:
            coverage.append({"event_day": day, "labelled": False, "n_labels": 0})
            continue
        day_labels = pl.concat([pl.read_parquet(p) for p in matches]).select(list(LABEL_SCHEMA))
        day_labels = LabelsModel.validate(day_labels.cast(LABEL_SCHEMA), lazy=True)
        wrong_day = day_labels.filter(pl.col("event_day") != day)
        if wrong_day.height:
            raise ValueError(f"label file(s) {[p.name for p in matches]} hold {wrong_day.height} "
                             f"rows for other days than {day}")
        frames.append(day_labels)
        coverage.append({"event_day": day, "labelled": True, "n_labels": day_labels.height})
    labels = pl.concat(frames) if frames else pl.DataFrame(schema=LABEL_SCHEMA)
    warehouse.replace_partitions(warehouse_path, LABELS_TABLE, labels, days)
    warehouse.replace_partitions(
        warehouse_path, LABEL_COVERAGE_TABLE,
        pl.DataFrame(coverage, schema={"event_day": pl.Date(), "labelled": pl.Boolean(),
                                       "n_labels": pl.Int64()}), days)
    return {row["event_day"]: (row["n_labels"] if row["labelled"] else None) for row in coverage}
