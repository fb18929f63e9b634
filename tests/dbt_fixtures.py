"""Helpers for tests that need a warehouse built by the real dbt project.

``build_warehouse`` lays down the raw tables exactly as the Dagster raw_events / event_labels
assets do (README "Data contracts"); ``run_dbt`` runs the project's dbt CLI against it in a
subprocess, as the dbt step does, with its target/ and logs/ beside the warehouse so that
concurrent test runs never share dbt's working files. ``run_dbt_spark`` does the same on the
``spark`` target.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from anomaly_pipeline.schema import LABEL_SCHEMA, conform

REPO_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_features"
DBT_PROFILES_DIR = REPO_ROOT / "resources" / "dbt"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
#: dbt with the Spark session prepared (anomaly_pipeline/dbt_spark.py).
SPARK_DBT_EXECUTABLE = Path(sys.executable).parent / "anomaly-pipeline-dbt"

#: Pseudonym key of test warehouses (a real key, not the demo one, so tests take the prod path).
TEST_PSEUDONYM_KEY = "test-pseudonym-key-0123456789abcdef"

FEATURE_MODELS = (
    "stg_events",
    "stg_labels",
    "int_sessions",
    "int_user_day_access",
    "int_user_day_milestones",
    "user_day_features",
)


def build_warehouse(
    tmp_path: Path,
    events_df: pl.DataFrame,
    labels_df: pl.DataFrame | None = None,
    *,
    source_file: str = "fixture.parquet",
) -> Path:
    """Create ``tmp_path/warehouse.duckdb`` with ``raw.raw_events`` and ``raw.event_labels``.

    ``events_df`` holds canonical events (missing nullable columns are added as nulls);
    ``event_day`` is the UTC date of ``event_time``. ``labels_df`` follows ``LABEL_SCHEMA``
    (empty when ``None``). Returns the warehouse path.
    """
    events = conform(events_df).with_columns(
        event_day=pl.col("event_time").dt.date(),
        source_file=pl.lit(source_file),
        loaded_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )
    labels = (
        pl.DataFrame(schema=LABEL_SCHEMA)
        if labels_df is None
        else labels_df.select(pl.col(name).cast(dtype) for name, dtype in LABEL_SCHEMA.items())
    )
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists raw")
        con.register("events_frame", events.to_arrow())
        con.register("labels_frame", labels.to_arrow())
        con.execute("create table raw.raw_events as select * from events_frame")
        con.execute("create table raw.event_labels as select * from labels_frame")
    return warehouse


def dbt_day_vars(start_day: date, end_day: date) -> list[str]:
    """``--vars`` arguments selecting the inclusive partition range."""
    return ["--vars", f"{{start_day: {start_day.isoformat()}, end_day: {end_day.isoformat()}}}"]


def run_dbt(
    args: Sequence[str],
    warehouse: Path,
    *,
    pseudonym_key: str = TEST_PSEUDONYM_KEY,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` on the project against ``warehouse``; raise with dbt's output if it
    fails and ``check`` is set."""
    return _run(
        DBT_EXECUTABLE,
        args,
        warehouse.parent / "dbt",
        {"ANOMALY_PIPELINE_WAREHOUSE": str(warehouse.resolve())},
        pseudonym_key=pseudonym_key,
        check=check,
    )


def run_dbt_spark(
    args: Sequence[str], spark_dir: Path, raw_parquet: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` on the project's ``spark`` target: a local Spark session (through
    ``anomaly-pipeline-dbt``) keeping its tables under ``spark_dir``, the sources over the
    Parquet folders ``raw_parquet/raw_events`` and ``raw_parquet/event_labels``."""
    return _run(
        SPARK_DBT_EXECUTABLE,
        args,
        spark_dir.parent / "dbt",
        {
            "ANOMALY_PIPELINE_DBT_TARGET": "spark",
            "ANOMALY_PIPELINE_SPARK_DIR": str(spark_dir.resolve()),
            "ANOMALY_PIPELINE_RAW_PARQUET": str(raw_parquet.resolve()),
        },
    )


def _run(
    executable: Path,
    args: Sequence[str],
    work_dir: Path,
    target_env: dict[str, str],
    *,
    pseudonym_key: str = TEST_PSEUDONYM_KEY,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``executable ARGS`` on the project with only ``target_env`` choosing the engine (the
    caller's demo flag and dbt target are dropped), dbt's files under ``work_dir``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("ANOMALY_PIPELINE_DEMO", "ANOMALY_PIPELINE_DBT_TARGET")
    }
    env |= {
        **target_env,
        "ANOMALY_PIPELINE_PSEUDONYM_KEY": pseudonym_key,
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }
    result = subprocess.run(
        [
            str(executable),
            *args,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROFILES_DIR),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} failed with exit code {result.returncode}:\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
        )
    return result
