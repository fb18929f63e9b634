"""Loading one partition range of landing files into the raw tables (domain core, no Dagster).

Why here and not in the asset: the load is the part on-call engineers need to trust (nothing lost,
nothing duplicated), so it is a plain function that tests can call directly; the Dagster asset only
adds configuration and metadata.

Which files a day reads and when they are complete is ``anomaly_pipeline.delivery``'s business;
event ids are unique per partition day (a copy in a later file of the day is quarantined), and a
re-delivery with no rows never silently replaces a day that holds rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import MalformedSourceError, source_reader
from anomaly_pipeline.cleaning import QUARANTINE_SCHEMA, clean, normalised
from anomaly_pipeline.delivery import (
    DEFAULT_SETTLE_S,
    day_files,
    require_day_files,
    wait_until_settled,
)
from anomaly_pipeline.labels import source_precedence
from anomaly_pipeline.schema import (
    DEFAULT_BOUNDS,
    LABEL_SCHEMA,
    RAW_TABLE_SCHEMA,
    NumericBounds,
)

RAW_EVENTS_TABLE = "raw.raw_events"
QUARANTINE_TABLE = "raw.quarantined_events"
INGEST_LOG_TABLE = "raw.ingest_log"
LABELS_TABLE = "raw.event_labels"
LABEL_COVERAGE_TABLE = "raw.label_coverage"

INGEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    "event_day": pl.Date(),
    "source_file": pl.String(),
    "input_rows": pl.Int64(),
    "accepted_rows": pl.Int64(),
    "quarantined_rows": pl.Int64(),
    "loaded_at": pl.Datetime("us", "UTC"),
}


class EmptyRedeliveryError(ValueError):
    """A day's landing files hold no rows while the warehouse holds rows for that day."""


@dataclass
class IngestReport:
    """What one load did, per day and in total (becomes Dagster metadata)."""

    input_rows: int = 0
    accepted_rows: int = 0
    quarantined_rows: int = 0
    files: list[str] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)

    def add(self, other: IngestReport) -> None:
        """Add another (a file's) report to this one."""
        self.input_rows += other.input_rows
        self.accepted_rows += other.accepted_rows
        self.quarantined_rows += other.quarantined_rows
        self.files.extend(other.files)
        self.rules.update(other.rules)


#: Rows read, cleaned, validated and written at a time: a 10 M-event day never sits in memory
#: whole (the staged text and ``raw_record`` of a row take several times its stored size).
INGEST_BATCH_ROWS = 500_000


def load_events(
    warehouse_path: Path,
    landing_dir: Path,
    days: list[date],
    *,
    source_format: str,
    pattern: str,
    mapping: Path | None = None,
    time_format: str | None = None,
    time_zone: str | None = None,
    bounds: NumericBounds = DEFAULT_BOUNDS,
    allow_empty_day: bool = False,
    settle_s: float = DEFAULT_SETTLE_S,
    now: datetime | None = None,
    batch_rows: int | None = INGEST_BATCH_ROWS,
) -> IngestReport:
    """Read, clean and store the landing files of ``days``; replace those partitions atomically.

    ``time_format`` / ``time_zone`` override the format's own (see ``adapters.source_reader``).
    Files are read, cleaned, validated and staged ``batch_rows`` rows at a time (``None``: each
    file whole); the days are replaced by the staged rows only after the last batch
    (``warehouse.partition_writer``), and a copy of an event id accepted from an earlier batch or
    file of the day is quarantined (looked up among the staged rows). A malformed
    file, a contract violation, a file still being written (``delivery``), or a day whose files
    hold no rows while the warehouse holds rows for it (unless ``allow_empty_day``) fails the
    whole range and changes no table. The stored rows do not depend on ``batch_rows``.
    """
    # pandera only where rows are validated: loading the code location imports this module.
    from anomaly_pipeline.contract_errors import validate_or_explain
    from anomaly_pipeline.event_contract import raw_events_schema

    reader = source_reader(source_format, mapping, time_format=time_format, time_zone=time_zone)
    files_by_day = {day: require_day_files(landing_dir, pattern, day) for day in days}
    wait_until_settled([path for files in files_by_day.values() for path in files], settle_s)
    now = now or datetime.now(UTC)
    contract = raw_events_schema(bounds)
    report = IngestReport()
    log_rows = []
    tables = {
        RAW_EVENTS_TABLE: RAW_TABLE_SCHEMA,
        QUARANTINE_TABLE: QUARANTINE_SCHEMA,
        INGEST_LOG_TABLE: INGEST_LOG_SCHEMA,
    }
    # Row order is not kept: every reader of these tables (dbt's stg_events, the counts) orders
    # or groups rows itself, and the parallel insert is a quarter faster.
    with warehouse.partition_writer(warehouse_path, tables, days, keep_row_order=False) as writer:
        for day, files in files_by_day.items():
            for path in files:
                file_report = IngestReport(files=[path.name])
                for frame in reader.frames(path, batch_rows):
                    staged = reader.stage(frame, path)
                    result = clean(
                        staged,
                        partition_day=day,
                        now=now,
                        source_file=path.name,
                        bounds=bounds,
                        accepted_earlier=_accepted_earlier(writer, day, staged),
                        time_format_description=reader.time_description,
                    )
                    accepted = result.accepted.with_columns(
                        event_day=pl.lit(day),
                        source_file=pl.lit(path.name),
                        loaded_at=pl.lit(now).cast(pl.Datetime("us", "UTC")),
                    )
                    validate_or_explain(
                        contract, accepted, table=RAW_EVENTS_TABLE, context=accepted
                    )
                    writer.insert(RAW_EVENTS_TABLE, accepted)
                    writer.insert(QUARANTINE_TABLE, result.quarantined)
                    file_report.input_rows += staged.height
                    file_report.accepted_rows += result.accepted.height
                    file_report.quarantined_rows += result.quarantined.height
                    file_report.rules.update(result.quarantined["rule"].to_list())
                log_rows.append(
                    {
                        "event_day": day,
                        "source_file": path.name,
                        "input_rows": file_report.input_rows,
                        "accepted_rows": file_report.accepted_rows,
                        "quarantined_rows": file_report.quarantined_rows,
                        "loaded_at": now,
                    }
                )
                report.add(file_report)
        if not allow_empty_day:
            _refuse_empty_redelivery(writer.stored_before, log_rows)
        writer.insert(INGEST_LOG_TABLE, pl.DataFrame(log_rows, schema=INGEST_LOG_SCHEMA))
    return report


def _accepted_earlier(
    writer: warehouse.PartitionWriter, day: date, staged: pl.DataFrame
) -> pl.DataFrame:
    """The ids of ``staged`` already accepted on ``day`` by earlier batches (``clean``'s
    ``accepted_earlier``), looked up among the staged rows: a 10 M-event day's ids are not kept
    in memory to de-duplicate across batches."""
    ids = staged.select(normalised("event_id"), event_day=pl.lit(day)).drop_nulls()
    return writer.staged_matches(RAW_EVENTS_TABLE, ids, ["event_id", "source_file"])


def _refuse_empty_redelivery(stored: dict[str, dict[date, int]], log_rows: list[dict]) -> None:
    """Raise when a day's files hold no rows but the warehouse held rows for that day.

    ``stored``: the rows each table held per day before this load (``PartitionWriter``). Why: a
    header-only re-delivery (an export that failed upstream) would otherwise replace a day's
    events with nothing, and every check downstream would pass on the empty day.
    """
    inputs: Counter[date] = Counter()
    files: dict[date, list[str]] = {}
    for row in log_rows:
        inputs[row["event_day"]] += row["input_rows"]
        files.setdefault(row["event_day"], []).append(row["source_file"])
    totals = {
        day: stored[RAW_EVENTS_TABLE][day] + stored[QUARANTINE_TABLE][day]
        for day in files
        if inputs[day] == 0
    }
    held = {day: total for day, total in totals.items() if total}
    if held:
        raise EmptyRedeliveryError(
            "; ".join(
                f"day {day}: landing file(s) {files[day]} hold no rows, "
                f"but {n} row(s) are stored for that day"
                for day, n in held.items()
            )
            + ". Nothing was replaced. Re-deliver the day's events, or set allow_empty_day: true "
            "(raw_events config) if the day really has none"
        )


def accounting_gaps(warehouse_path: Path, days: list[date]) -> dict[date, tuple[int, int]]:
    """Days where accepted + quarantined rows differ from the logged input.

    Returns day → (stored, input)."""
    stored_ok = warehouse.count_by_day(warehouse_path, RAW_EVENTS_TABLE, days)
    stored_bad = warehouse.count_by_day(warehouse_path, QUARANTINE_TABLE, days)
    logged = warehouse.read_days(warehouse_path, INGEST_LOG_TABLE, days)
    inputs = (
        {d: 0 for d in days}
        if logged.is_empty()
        else dict(logged.group_by("event_day").agg(pl.col("input_rows").sum()).iter_rows())
    )
    return {
        day: (stored_ok[day] + stored_bad[day], inputs.get(day, 0))
        for day in days
        if stored_ok[day] + stored_bad[day] != inputs.get(day, 0)
    }


def _read_labels(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path).select(pl.col(c).cast(t) for c, t in LABEL_SCHEMA.items())
    except (pl.exceptions.PolarsError, OSError) as error:
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MalformedSourceError(path, f"not a labels file ({problem})") from None


def load_labels(
    warehouse_path: Path,
    labels_dir: Path,
    days: list[date],
    *,
    pattern: str = "labels_{day}*.parquet",
    settle_s: float = DEFAULT_SETTLE_S,
) -> dict[date, int | None]:
    """Store the label files of ``days``; return labels per day (None = day not labelled).

    A day without a label file is *unlabelled* (quality cannot be measured on it), which is not the
    same as a labelled day without abnormal users; ``raw.label_coverage`` records the difference.
    Files follow the same delivery convention as events (``anomaly_pipeline.delivery``). Several
    sources may deliver a day (``labels_<day>.parquet``, ``labels_<day>.<source>.parquet``): each
    file must hold a user once, and a user-day two files label is stored once, by
    ``labels.source_precedence``.
    """
    from anomaly_pipeline.contract_errors import validate_or_explain
    from anomaly_pipeline.event_contract import LabelsModel

    files_by_day = {day: day_files(labels_dir, pattern, day) for day in days}
    wait_until_settled([path for files in files_by_day.values() for path in files], settle_s)
    frames: list[pl.DataFrame] = []
    coverage: list[dict[str, Any]] = []
    for day, matches in files_by_day.items():
        if not matches:
            coverage.append({"event_day": day, "labelled": False, "n_labels": 0})
            continue
        parts = []
        for path in matches:
            part = _read_labels(path)
            context = pl.DataFrame(
                {"source_file": [path.name] * part.height, "event_day": [day] * part.height},
                schema={"source_file": pl.String(), "event_day": pl.Date()},
            )
            part = validate_or_explain(
                LabelsModel.to_schema(), part, table=LABELS_TABLE, context=context
            )
            wrong_day = part.filter(pl.col("event_day") != day)
            if wrong_day.height:
                raise ValueError(
                    f"label file {path.name} holds {wrong_day.height} rows for other days "
                    f"than {day}"
                )
            parts.append(part.with_columns(source_file=pl.lit(path.name)))
        day_labels = source_precedence(pl.concat(parts)).drop("source_file")
        frames.append(day_labels)
        coverage.append({"event_day": day, "labelled": True, "n_labels": day_labels.height})
    labels = pl.concat(frames) if frames else pl.DataFrame(schema=LABEL_SCHEMA)
    warehouse.replace_partitions(warehouse_path, LABELS_TABLE, labels, days)
    warehouse.replace_partitions(
        warehouse_path,
        LABEL_COVERAGE_TABLE,
        pl.DataFrame(
            coverage,
            schema={"event_day": pl.Date(), "labelled": pl.Boolean(), "n_labels": pl.Int64()},
        ),
        days,
    )
    return {row["event_day"]: (row["n_labels"] if row["labelled"] else None) for row in coverage}


@dataclass(frozen=True)
class DayFigures:
    """What the stored tables hold for one partition day (a range run reports each day's own)."""

    input_rows: int
    accepted_rows: int
    quarantined_rows: int
    files: list[str]
    rules: dict[str, int]


def day_figures(warehouse_path: Path, days: list[date]) -> dict[date, DayFigures]:
    """Per day: the logged input, the stored accepted/quarantined rows and the rules that fired."""
    accepted = warehouse.count_by_day(warehouse_path, RAW_EVENTS_TABLE, days)
    quarantined = warehouse.count_by_day(warehouse_path, QUARANTINE_TABLE, days)
    log = warehouse.read_days(
        warehouse_path, INGEST_LOG_TABLE, days, columns=["event_day", "source_file", "input_rows"]
    )
    rules = warehouse.read_days(
        warehouse_path, QUARANTINE_TABLE, days, columns=["event_day", "rule"]
    )
    figures = {}
    for day in days:
        day_log = log.filter(pl.col("event_day") == day) if log.height else log
        day_rules = (
            rules.filter(pl.col("event_day") == day)["rule"].value_counts(sort=True)
            if rules.height
            else pl.DataFrame({"rule": [], "count": []})
        )
        figures[day] = DayFigures(
            input_rows=int(day_log["input_rows"].sum()) if day_log.height else 0,
            accepted_rows=accepted[day],
            quarantined_rows=quarantined[day],
            files=day_log["source_file"].to_list() if day_log.height else [],
            rules=dict(day_rules.iter_rows()),
        )
    return figures
