"""Analyst feedback on alerts: verdict files in ``landing/labels`` → ``raw.analyst_feedback``.

Why feedback is its own table and not rows of ``raw.event_labels``: analysts judge alerts, and
alerts carry the pseudonymised ``user_key`` (no raw id is shown past staging), while source labels
carry the source's raw ``user_id``. Feedback stays keyed by ``user_key``; ``labels.user_day_labels``
joins both kinds per user-day with a fixed precedence (an analyst's verdict beats a source label).

File format (CSV with a header; one file or several per day, ``feedback_<day>*.csv``, delivered
like every landing file: temporary name, then rename):

* ``verdict`` (required): ``confirmed`` (label 1) or ``false_positive`` (label 0);
* the user-day: ``alert_id`` (from ``scoring.anomaly_alerts``), or ``user_key`` + ``event_day``
  (a user-day of ``scoring.daily_anomaly_scores``); with both, they must agree;
* optional: ``anomaly_type`` (one of ``LABEL_TYPES``, with ``confirmed`` only), ``analyst``,
  ``decided_at`` (ISO-8601; orders verdicts on the same user-day), ``note``.

Every row is accepted or quarantined (``raw.quarantined_feedback``) with a rule and a reason, so
accepted + quarantined = input; a file's day is its partition, and a row about another day is
quarantined as ``out_of_partition``. Reloading a day replaces its rows (no duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.adapters import MalformedSourceError
from anomaly_pipeline.adapters.readers import iter_csv_text
from anomaly_pipeline.alerts import ALERT_SCHEMA
from anomaly_pipeline.cleaning import QUARANTINE_SCHEMA
from anomaly_pipeline.delivery import DEFAULT_SETTLE_S, day_files, wait_until_settled
from anomaly_pipeline.ingest import IngestReport
from anomaly_pipeline.schema import LABEL_TYPES, UTC_MICROS

FEEDBACK_TABLE: Final = "raw.analyst_feedback"
FEEDBACK_QUARANTINE_TABLE: Final = "raw.quarantined_feedback"
ALERTS_TABLE: Final = "scoring.anomaly_alerts"
SCORES_TABLE: Final = "scoring.daily_anomaly_scores"
FEEDBACK_PATTERN: Final = "feedback_{day}*.csv"

#: Verdict → label of the user-day.
VERDICTS: Final[dict[str, int]] = {"confirmed": 1, "false_positive": 0}
#: Columns a feedback file may have; ``verdict`` and a user-day key are required.
FILE_COLUMNS: Final[tuple[str, ...]] = (
    "alert_id",
    "user_key",
    "event_day",
    "verdict",
    "anomaly_type",
    "analyst",
    "decided_at",
    "note",
)

FEEDBACK_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_key": pl.String(),
    "event_day": pl.Date(),
    "verdict": pl.String(),
    "label": pl.Int8(),
    "anomaly_type": pl.String(),
    "alert_id": pl.String(),
    "analyst": pl.String(),
    "decided_at": UTC_MICROS,
    "note": pl.String(),
    "source_file": pl.String(),
    #: 1-based row of the file (after the header): the last word among equal ``decided_at``.
    "row_number": pl.Int64(),
    "loaded_at": UTC_MICROS,
}


@dataclass
class FeedbackReport(IngestReport):
    """What one feedback load read and stored: ``IngestReport``'s totals, and per day."""

    #: day → (input, accepted, quarantined)
    per_day: dict[date, tuple[int, int, int]] = field(default_factory=dict)


def _read_file(path: Path) -> pl.DataFrame:
    """The file's rows as trimmed strings (empty → null) in ``FILE_COLUMNS`` + ``raw_record``."""
    frame = pl.concat(list(iter_csv_text(path)), how="vertical")
    unknown = [c for c in frame.columns if c not in (*FILE_COLUMNS, "raw_record")]
    if unknown:
        raise MalformedSourceError(
            path, f"unknown column(s) {unknown}; a feedback file has {list(FILE_COLUMNS)}"
        )
    if "verdict" not in frame.columns:
        raise MalformedSourceError(path, "has no 'verdict' column")
    if "alert_id" not in frame.columns and not {"user_key", "event_day"} <= set(frame.columns):
        raise MalformedSourceError(
            path, "names no user-day: it needs an 'alert_id' column or 'user_key' and 'event_day'"
        )
    return frame.select(
        *(
            pl.col(c).str.strip_chars().replace("", None).alias(c)
            if c in frame.columns
            else pl.lit(None, pl.String).alias(c)
            for c in FILE_COLUMNS
        ),
        pl.col("raw_record"),
    )


def _judge(
    rows: pl.DataFrame, day: date, alerts: pl.DataFrame, scored: pl.DataFrame
) -> pl.DataFrame:
    """Resolve each row's user-day and add ``rule`` / ``reason`` (null = accepted).

    Rules in order (a row fails under the first): ``missing_key``, ``unknown_alert_id``,
    ``bad_event_day``, ``alert_mismatch``, ``out_of_partition``, ``unknown_user_day``,
    ``missing_verdict``, ``unknown_verdict``, ``unknown_anomaly_type``, ``type_without_confirmed``,
    ``bad_decided_at``.
    """
    resolved = (
        rows.join(
            alerts.rename({"user_key": "_alert_user", "event_day": "_alert_day"}),
            on="alert_id",
            how="left",
        )
        .with_columns(
            _day=pl.col("event_day").str.to_date("%Y-%m-%d", strict=False),
            _decided=pl.col("decided_at").str.to_datetime(
                "%+", time_zone="UTC", time_unit="us", strict=False
            ),
        )
        .with_columns(
            _user=pl.coalesce("_alert_user", "user_key"),
            _resolved_day=pl.coalesce("_alert_day", "_day"),
        )
    )
    resolved = resolved.join(
        scored.with_columns(_scored=pl.lit(True)),
        left_on=["_user", "_resolved_day"],
        right_on=["user_key", "event_day"],
        how="left",
    )
    known_types = list(LABEL_TYPES)
    checks: list[tuple[str, pl.Expr, pl.Expr]] = [
        (
            "missing_key",
            pl.col("alert_id").is_null()
            & (pl.col("user_key").is_null() | pl.col("event_day").is_null()),
            pl.lit("no alert_id, and user_key or event_day is empty"),
        ),
        (
            "unknown_alert_id",
            pl.col("alert_id").is_not_null() & pl.col("_alert_user").is_null(),
            pl.format("alert_id '{}' is not in {}", pl.col("alert_id"), pl.lit(ALERTS_TABLE)),
        ),
        (
            "bad_event_day",
            pl.col("event_day").is_not_null() & pl.col("_day").is_null(),
            pl.format("event_day '{}' is not a date (YYYY-MM-DD)", pl.col("event_day")),
        ),
        (
            "alert_mismatch",
            pl.col("_alert_user").is_not_null()
            & (
                (pl.col("user_key").is_not_null() & (pl.col("user_key") != pl.col("_alert_user")))
                | (pl.col("_day").is_not_null() & (pl.col("_day") != pl.col("_alert_day")))
            ),
            pl.format(
                "alert_id '{}' is user_key {} on {}, not the row's user_key/event_day",
                pl.col("alert_id"),
                pl.col("_alert_user"),
                pl.col("_alert_day").cast(pl.String),
            ),
        ),
        (
            "out_of_partition",
            pl.col("_resolved_day") != day,
            pl.format(
                "the row is about {}, the file about {}: deliver it in that day's feedback file",
                pl.col("_resolved_day").cast(pl.String),
                pl.lit(day.isoformat()),
            ),
        ),
        (
            "unknown_user_day",
            pl.col("_scored").is_null(),
            pl.format(
                "user_key {} was not scored on {} ({})",
                pl.col("_user"),
                pl.col("_resolved_day").cast(pl.String),
                pl.lit(SCORES_TABLE),
            ),
        ),
        ("missing_verdict", pl.col("verdict").is_null(), pl.lit("verdict is empty")),
        (
            "unknown_verdict",
            ~pl.col("verdict").is_in(list(VERDICTS)),
            pl.format(
                "verdict '{}' is not one of {}", pl.col("verdict"), pl.lit(", ".join(VERDICTS))
            ),
        ),
        (
            "unknown_anomaly_type",
            pl.col("anomaly_type").is_not_null() & ~pl.col("anomaly_type").is_in(known_types),
            pl.format(
                "anomaly_type '{}' is not one of {}",
                pl.col("anomaly_type"),
                pl.lit(", ".join(LABEL_TYPES)),
            ),
        ),
        (
            "type_without_confirmed",
            pl.col("anomaly_type").is_not_null() & (pl.col("verdict") != "confirmed"),
            pl.format(
                "anomaly_type '{}' given with verdict '{}': only a confirmed alert has a type",
                pl.col("anomaly_type"),
                pl.col("verdict"),
            ),
        ),
        (
            "bad_decided_at",
            pl.col("decided_at").is_not_null() & pl.col("_decided").is_null(),
            pl.format(
                "decided_at '{}' is not an ISO-8601 time with a UTC offset "
                "(e.g. 2026-10-02T14:05:00Z)",
                pl.col("decided_at"),
            ),
        ),
    ]
    rule: pl.Expr = pl.lit(None, pl.String)
    reason: pl.Expr = pl.lit(None, pl.String)
    for code, failed, why in reversed(checks):  # the first failing rule wins
        rule = pl.when(failed.fill_null(False)).then(pl.lit(code)).otherwise(rule)
        reason = pl.when(failed.fill_null(False)).then(why).otherwise(reason)
    return resolved.with_columns(rule=rule, reason=reason)


def load_feedback(
    warehouse_path: Path,
    labels_dir: Path,
    days: list[date],
    *,
    pattern: str = FEEDBACK_PATTERN,
    settle_s: float = DEFAULT_SETTLE_S,
    now: datetime | None = None,
) -> FeedbackReport:
    """Read, judge and store the feedback files of ``days``; replace those partitions atomically.

    Every file is read before anything is written, so a malformed file (not CSV, no verdict
    column, no user-day columns, an unknown column) fails the range and changes no table. A day
    without a feedback file stores no feedback (its earlier rows, if any, are replaced by none).
    """
    files_by_day = {day: day_files(labels_dir, pattern, day) for day in days}
    wait_until_settled([path for files in files_by_day.values() for path in files], settle_s)
    now = now or datetime.now(UTC)
    alerts = warehouse.read_days(
        warehouse_path, ALERTS_TABLE, days, columns=["alert_id", "user_key", "event_day"]
    )
    if alerts.is_empty():
        alerts = pl.DataFrame(
            schema={"alert_id": pl.String(), "user_key": pl.String(), "event_day": pl.Date()}
        )
    scored = warehouse.read_days(
        warehouse_path, SCORES_TABLE, days, columns=["user_key", "event_day"]
    )
    if scored.is_empty():
        scored = pl.DataFrame(schema={"user_key": pl.String(), "event_day": pl.Date()})
    report = FeedbackReport()
    accepted_parts, quarantined_parts = [], []
    for day, files in files_by_day.items():
        read = kept = rejected = 0
        for path in files:
            judged = _judge(_read_file(path).with_row_index("row_number", 1), day, alerts, scored)
            good, bad = (
                judged.filter(pl.col("rule").is_null()),
                judged.filter(pl.col("rule").is_not_null()),
            )
            accepted_parts.append(
                good.select(
                    user_key=pl.col("_user"),
                    event_day=pl.col("_resolved_day"),
                    verdict=pl.col("verdict"),
                    label=pl.col("verdict").replace_strict(VERDICTS, return_dtype=pl.Int8),
                    anomaly_type=pl.col("anomaly_type"),
                    alert_id=pl.col("alert_id"),
                    analyst=pl.col("analyst"),
                    decided_at=pl.col("_decided"),
                    note=pl.col("note"),
                    source_file=pl.lit(path.name),
                    row_number=pl.col("row_number").cast(pl.Int64),
                    loaded_at=pl.lit(now).cast(UTC_MICROS),
                )
            )
            quarantined_parts.append(
                bad.select(
                    event_day=pl.lit(day),
                    source_file=pl.lit(path.name),
                    rule=pl.col("rule"),
                    reason=pl.format("row {}: {}", pl.col("row_number"), pl.col("reason")),
                    raw_record=pl.col("raw_record"),
                    quarantined_at=pl.lit(now).cast(UTC_MICROS),
                )
            )
            report.files.append(path.name)
            report.rules.update(bad["rule"].to_list())
            read, kept, rejected = read + judged.height, kept + good.height, rejected + bad.height
        report.per_day[day] = (read, kept, rejected)
        report.input_rows += read
        report.accepted_rows += kept
        report.quarantined_rows += rejected
    accepted = pl.concat(
        [pl.DataFrame(schema=FEEDBACK_SCHEMA), *accepted_parts], how="vertical_relaxed"
    ).select(pl.col(c).cast(t) for c, t in FEEDBACK_SCHEMA.items())
    quarantined = pl.concat(
        [pl.DataFrame(schema=QUARANTINE_SCHEMA), *quarantined_parts], how="vertical_relaxed"
    ).select(pl.col(c).cast(t) for c, t in QUARANTINE_SCHEMA.items())
    warehouse.replace_partitions(warehouse_path, FEEDBACK_TABLE, accepted, days)
    warehouse.replace_partitions(warehouse_path, FEEDBACK_QUARANTINE_TABLE, quarantined, days)
    return report


def stored_counts(warehouse_path: Path, days: list[date]) -> dict[date, tuple[int, int]]:
    """Per day: (accepted, quarantined) feedback rows in the tables (for the accounting check)."""
    accepted = warehouse.count_by_day(warehouse_path, FEEDBACK_TABLE, days)
    quarantined = warehouse.count_by_day(warehouse_path, FEEDBACK_QUARANTINE_TABLE, days)
    return {day: (accepted[day], quarantined[day]) for day in days}


def template(alerts: pl.DataFrame) -> pl.DataFrame:
    """A feedback file to fill in for ``alerts`` (``ALERT_SCHEMA`` rows): one row per alert with
    its id, user and day, the verdict empty, and score / outcome / reasons as a ``note`` to read.
    """
    return alerts.sort(["score", "alert_id"], descending=[True, False]).select(
        pl.col("alert_id"),
        pl.col("user_key"),
        pl.col("event_day").cast(pl.String),
        verdict=pl.lit(None, pl.String),
        anomaly_type=pl.lit(None, pl.String),
        analyst=pl.lit(None, pl.String),
        decided_at=pl.lit(None, pl.String),
        note=pl.format(
            "score {} ({}): {}",
            pl.col("score").round(1),
            pl.col("outcome"),
            pl.col("reasons").list.join("; "),
        ),
    )


def write_template(warehouse_path: Path, day: date, out: Path) -> int:
    """Write ``template`` of ``day``'s alerts to ``out`` (CSV); return the number of alerts.

    ``out`` must not exist (a filled-in file is never overwritten) and should lie outside the
    landing folder until its verdicts are filled in: a row without a verdict is quarantined.
    """
    if out.exists():
        raise FileExistsError(f"{out} exists; move it away or choose another --out")
    alerts = warehouse.read_days(warehouse_path, ALERTS_TABLE, [day])
    if alerts.is_empty():
        if not warehouse.count_by_day(warehouse_path, SCORES_TABLE, [day])[day]:
            raise ValueError(f"{day} has no scores in {warehouse_path}: run scoring_job for it")
        alerts = pl.DataFrame(schema=ALERT_SCHEMA)
    template(alerts).write_csv(out)
    return alerts.height
