"""``anomaly-pipeline onboard``: bring a history file of any number of days, end with scores.

Steps, each visible afterwards in the Dagster UI (`make dev`) of the data home's instance:
1. split the file into canonical landing day files (``onboarding.history``) and record the first
   day and the time zone in the data home (``source.json``: the daily partitions then cover the
   data without ``ANOMALY_PIPELINE_START_DATE``);
2. ``ingest_features_job`` over the whole range as one run;
3. ``training_job`` (with no labels the champion gate chooses a label-free default);
4. ``scoring_job`` over the range (scores, alerts, drift);
5. a summary read back from the warehouse and the champion gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from anomaly_pipeline.adapters import SOURCE_FORMATS, SourceReader, source_reader
from anomaly_pipeline.onboarding.history import (
    SplitReport,
    day_file,
    source_name,
    split_history,
    undated_file,
)
from anomaly_pipeline.onboarding.summary import Champion, ingest_counts, ingest_lines, score_lines
from anomaly_pipeline.paths import DataHome, data_home, repo_path
from anomaly_pipeline.source_settings import read_source_settings, write_source_settings

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

LOG_NAME = "onboard.log"
#: The summary reports what the runs warn about per day (e.g. the alert guard), once.
CONSOLE_LEVEL = "ERROR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="history file: CSV, Parquet or JSON Lines")
    parser.add_argument("--format", required=True, choices=SOURCE_FORMATS, dest="source_format")
    parser.add_argument("--mapping", type=Path, help="YAML column mapping (--format mapped)")
    parser.add_argument(
        "--time-format",
        help="strftime pattern of the times (e.g. "
        "'%%m/%%d/%%Y %%H:%%M') or unix_s | unix_ms | iso8601; default: the "
        "format's own",
    )
    parser.add_argument(
        "--timezone",
        help="IANA time zone of times without an offset "
        "(converted to UTC); recorded for time-of-day features; default UTC",
    )
    parser.add_argument(
        "--labels-column",
        help="source column holding a 0/1 label per row "
        "(imported as labels; otherwise labels never come from this file)",
    )
    parser.add_argument(
        "--name",
        help="source name in the day-file names (default: the file's "
        "stem); a second file with a new name adds its days",
    )
    parser.add_argument(
        "--split-only",
        action="store_true",
        help="write the day files and stop (the landing sensor or a backfill runs them)",
    )


def _days(days: list[date]) -> str:
    return f"{len(days)} day{'s' if len(days) != 1 else ''} ({days[0]} … {days[-1]})"


def _prepare_instance(home: DataHome) -> None:
    """Point Dagster at the data home's instance, configured like `make` configures it."""
    os.environ.setdefault("DAGSTER_HOME", str(home.dagster_home))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    instance_yaml = Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo_path("resources/dagster.yaml"), instance_yaml)


def _record_source(home: DataHome, first_day: date, time_zone: str | None) -> None:
    settings = read_source_settings(home).earliest(first_day)
    if time_zone is not None:
        settings = dataclasses.replace(settings, timezone=time_zone)
    write_source_settings(home, settings)


def _partitioned_days(days: list[date]) -> list[date]:
    """The days that are daily partitions now (today's, incomplete, is not one yet)."""
    from anomaly_pipeline.defs.partitions import START_DATE_ENV, daily_partitions

    keys = set(daily_partitions.get_partition_keys())
    kept = [day for day in days if day.isoformat() in keys]
    if not kept:
        raise SystemExit(
            f"none of the days {days[0]} … {days[-1]} is a daily partition; "
            f"is {START_DATE_ENV} set to a later day?"
        )
    return kept


def _training_run_config(home: DataHome) -> dict | None:
    """Run config of training_job for the feature days there are, or None when there are none.

    The default time split (``TrainingSetConfig``) trains on the days before its validation and
    holdout days. On a fresh history those are its first days, whose trailing-window features
    have no history yet: unless they span a whole window, a model trained on them finds every
    later day abnormal (measured: a 6-day click-stream trained on its first day flagged 26–32 %
    of each later day). Such a history is split by user instead, every day in each split.
    """
    from anomaly_pipeline.defs.training.assets import TrainingSetConfig
    from anomaly_pipeline.feature_contract import HISTORY_WINDOW_DAYS
    from anomaly_pipeline.training_set import feature_days

    n_days, default = len(feature_days(home.warehouse)), TrainingSetConfig()
    if n_days == 0:
        return None
    if n_days - default.validation_days - default.holdout_days >= HISTORY_WINDOW_DAYS:
        return {}
    return {"ops": {"training_set": {"config": {"split_by": "user"}}}}


def _champion(
    home: DataHome, training: ExecuteInProcessResult | None, why_not_trained: str
) -> Champion:
    """The champion after training and the gate's reason (from its check evaluation)."""
    from anomaly_pipeline.defs.evaluation.assets import GATE_CHECK
    from anomaly_pipeline.model_registry import get_champion

    champion = get_champion(home.mlflow_tracking_uri)
    model = f"{champion.kind} v{champion.version}" if champion else "none"
    if training is None:
        return Champion(model, why_not_trained)
    verdict = next(
        (e for e in training.get_asset_check_evaluations() if e.check_name == GATE_CHECK), None
    )
    if verdict is None:
        return Champion(
            model,
            f"training_job failed before the champion gate decided (`make dev` "
            f"→ Runs → {training.run_id})",
        )
    decision = verdict.metadata.get("decision")
    prefix = f"{decision.value}: " if decision is not None else ""
    return Champion(model, prefix + (verdict.description or ""))


def _daily_operation_lines(args: argparse.Namespace, home: DataHome) -> list[str]:
    options = "".join(
        f" {flag} '{value}'"
        for flag, value in (
            ("--mapping", args.mapping),
            ("--time-format", args.time_format),
            ("--timezone", args.timezone),
        )
        if value
    )
    return [
        "Daily operation:",
        f"  new export → day files: anomaly-pipeline onboard NEW_FILE --format "
        f"{args.source_format}{options} --split-only",
        "  landing sensor: `make dev` → Automation → turn on landing_zone_sensor (a new or "
        f"re-delivered day file in {home.landing_events} runs daily_job for its day)",
        "  schedule: turn on daily_scoring_schedule (daily_job for yesterday at "
        "$ANOMALY_PIPELINE_SCHEDULE_HOUR, default 02:00 UTC)",
        "Adding labels later: put labels_YYYY-MM-DD[.SOURCE].parquet (user_id, event_day, "
        f"anomaly_type) in {home.landing_labels}, or re-onboard with --labels-column COLUMN, "
        "or judge alerts (anomaly-pipeline feedback-template DAY → feedback_DAY.csv there); "
        "then run ingest_features_job for those days and training_job",
    ]


def _already_scored(home: DataHome, days: list[date], files: list[str], events: int) -> bool:
    """Whether these day files were loaded in full and every day has scores (then re-running
    the jobs would change nothing but timestamps and model versions)."""
    from anomaly_pipeline import warehouse
    from anomaly_pipeline.scoring import SCORES_TABLE

    if not home.warehouse.exists() or not all(
        warehouse.count_by_day(home.warehouse, SCORES_TABLE, days).values()
    ):
        return False
    counts = ingest_counts(home.warehouse, days, files)
    return counts.accepted + counts.total_quarantined == events


def _run_jobs(home: DataHome, days: list[date], reader: SourceReader) -> Champion:
    """Ingest + features over the range as one run, training, scoring over the range."""
    from anomaly_pipeline.runs import range_tags, run_job

    raw_config = {
        "source_format": "canonical",
        "file_pattern": "events_{day}.*",
        "time_format": reader.time_format,
        "timezone": reader.time_zone,
    }
    print("Running the jobs:")
    run = partial(run_job, log_name=LOG_NAME, console_level=CONSOLE_LEVEL)
    run(
        "ingest_features_job",
        tags=range_tags(days),
        run_config={"ops": {"raw_events": {"config": raw_config}}},
    )
    training_config = _training_run_config(home)
    training = (
        None
        if training_config is None
        else run("training_job", run_config=training_config, raise_on_failure=False)
    )
    champion = _champion(
        home, training, "not trained: no feature day was built — see the quarantine reasons above"
    )
    if champion.model != "none":
        run("scoring_job", tags=range_tags(days), raise_on_failure=False)
    return champion


def onboard(args: argparse.Namespace) -> list[str]:
    """Split, run and summarise; return the summary lines."""
    reader = source_reader(
        args.source_format, args.mapping, time_format=args.time_format, time_zone=args.timezone
    )
    home = data_home().ensure()
    source = source_name(args.path, args.name)
    print(
        f"Splitting {args.path} ({args.source_format}, times {reader.time_description}) into "
        f"day files in {home.landing_events}"
    )
    split: SplitReport = split_history(
        reader,
        args.path,
        landing_events=home.landing_events,
        landing_labels=home.landing_labels,
        work_dir=home.root / f".onboarding-{os.getpid()}",
        source=source,
        labels_column=args.labels_column,
        now=datetime.now(UTC),
    )
    _record_source(
        home,
        split.days[0],
        args.timezone or (reader.time_zone if reader.mapping is not None else None),
    )
    lines = [
        f"Source {source}: {split.rows:,} rows → {split.events:,} events over "
        f"{_days(split.days)}; "
        f"{split.files_written} files written, {split.files_unchanged} unchanged"
    ]
    if split.ignored_columns:
        lines.append(f"Ignored columns: {', '.join(split.ignored_columns)}")
    if split.labelled_user_days is not None:
        lines.append(
            f"Labels from column {args.labels_column}: {split.labelled_user_days:,} "
            "abnormal user-days"
        )
    if args.split_only:
        return lines + _daily_operation_lines(args, home)

    _prepare_instance(home)
    days = _partitioned_days(split.days)
    if days != split.days:
        lines.append(
            f"Days not yet a partition (skipped until complete): "
            f"{sorted(set(split.days) - set(days))}"
        )
    files = [day_file(home.landing_events, d, source).name for d in split.days]
    files.append(undated_file(home.landing_events, split.days[0], source).name)
    events = sum(split.events_per_day[d] for d in days) + split.undated_events
    if split.files_written == 0 and _already_scored(home, days, files, events):
        lines.append("Nothing changed since these days were onboarded: no run started")
        champion = _champion(home, None, "unchanged (no new data to train on)")
    else:
        champion = _run_jobs(home, days, reader)
    counts = ingest_counts(home.warehouse, days, files)
    from anomaly_pipeline.defs.scoring.assets import GUARD_TABLE

    lines += [
        f"Days: {_days(days)}",
        *ingest_lines(counts, events=events, undated=split.undated_events),
        f"Champion: {champion.model} — {champion.reason}",
        *score_lines(home.warehouse, days, GUARD_TABLE),
        *_daily_operation_lines(args, home),
        f"Runs: `make dev` → Runs; dbt output: {home.root / LOG_NAME}",
    ]
    return lines
