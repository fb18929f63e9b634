"""Jobs of the code location as real `dagster job execute` processes, and a way to kill them.

Used by the fault-injection and concurrency tests: each run is its own process group on a data
directory with its own Dagster instance (the project's resources/dagster.yaml, pools included), so
``kill -9`` of the group is what an OOM kill or a lost machine does to a run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
#: Every table of the warehouse a run writes, with its day column.
TABLES = {
    "raw.raw_events": "event_day",
    "raw.quarantined_events": "event_day",
    "raw.event_labels": "event_day",
    "features.stg_events": "event_day",
    "features.int_sessions": "event_day",
    "features.user_day_features": "event_day",
    "features.behaviour_sequences": "event_day",
    "scoring.daily_anomaly_scores": "event_day",
    "scoring.anomaly_alerts": "event_day",
    "monitoring.feature_drift": "event_day",
}
#: Columns that record when a run wrote a row, not what it wrote.
RUN_TIME_COLUMNS = {"loaded_at", "quarantined_at", "scored_at"}
#: Per table, columns whose value may legitimately differ between two runs over the same input.
#: The drift statistics: a re-run may end a feature in another last bit (see
#: ``assert_same_contents``), and when that feature value equals a reference quantile edge (it
#: often does: the reference holds the same rows) the bin counts, and so PSI, KS and the per-row
#: flag, move. The rows themselves (feature, kind, sample sizes, reference mean, unseen share,
#: model version) must still be equal.
UNSTABLE_COLUMNS = {
    "monitoring.feature_drift": {
        "psi",
        "ks_stat",
        "ks_pvalue",
        "cur_mean",
        "drifted",
    }
}


@dataclass
class Home:
    """A data directory with a Dagster instance configured by resources/dagster.yaml."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANOMALY_PIPELINE_HOME": str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "ANOMALY_PIPELINE_DEMO": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }

    @classmethod
    def create(cls, root: Path) -> Home:
        home = cls(root)
        home.dagster_home.mkdir(parents=True, exist_ok=True)
        home.configure_instance()
        return home

    def configure_instance(self) -> None:
        """Configure the instance with resources/dagster.yaml and create its databases now: two
        processes of a run must not both create them at the same moment (sqlite storage stamps
        its schema version on creation)."""
        shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", self.dagster_home / "dagster.yaml")
        import dagster as dg

        with self.instance() as instance:
            instance.get_runs(limit=1)
            instance.get_latest_materialization_event(dg.AssetKey("raw_events"))

    def copy_to(self, root: Path) -> Home:
        """A snapshot of this directory (DuckDB, MLflow, artifacts, Dagster instance)."""
        shutil.copytree(self.root, root)
        return Home(root)

    def instance(self) -> Any:
        from anomaly_pipeline.instance import open_instance

        return open_instance(self.dagster_home)


def start_job(
    home: Home,
    job: str,
    *,
    days: list[date] | None = None,
    ops: dict[str, Any] | None = None,
    in_process: bool = True,
    executor: dict[str, Any] | None = None,
    log_name: str | None = None,
) -> subprocess.Popen:
    """Start ``dagster job execute`` for ``job`` in a new process group (output to a log file).

    ``in_process`` runs every step in the run's process (one import of the code location instead
    of one per step); the default multiprocess executor is what a deployment uses. ``executor``
    names another executor choice of the code location with its config (``{"celery": {...}}``).
    """
    config: dict[str, Any] = {"ops": ops or {}}
    if executor is not None:
        config["execution"] = {"config": executor}
    elif in_process:
        config["execution"] = {"config": {"in_process": {}}}
    config_path = home.root / f"{job}-{time.monotonic_ns()}.json"
    config_path.write_text(json.dumps(config))
    command = [
        DAGSTER,
        "job",
        "execute",
        "-m",
        "anomaly_pipeline.definitions",
        "-j",
        job,
        "-c",
        str(config_path),
    ]
    if days:
        command += [
            "--tags",
            json.dumps(
                {
                    "dagster/asset_partition_range_start": days[0].isoformat(),
                    "dagster/asset_partition_range_end": days[-1].isoformat(),
                }
            ),
        ]
    # The child inherits the log's descriptor, so this process's copy can close at once.
    with open(home.root / (log_name or f"{job}.log"), "a") as log:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=home.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_job(home: Home, job: str, *, timeout: float = 600, **kwargs: Any) -> None:
    """Run ``job`` to the end; fail with the tail of its log when it does not succeed."""
    process = start_job(home, job, **kwargs)
    code = process.wait(timeout=timeout)
    log = (home.root / kwargs.get("log_name", f"{job}.log")).read_text(errors="replace")
    assert code == 0, f"{job} exited {code}:\n{log[-4000:]}"


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: subprocess.Popen | None = None,
) -> None:
    """Poll ``condition`` every 0.1 s; fail when the run ended first or time ran out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def step_started(home: Home, step_key: str) -> Callable[[], bool]:
    """True once a started run of the instance logged STEP_START for ``step_key``.

    Only STARTED runs are read: their event log database exists by then (a sqlite instance
    creates one per run, and two processes creating it at once can corrupt its schema stamp).
    """
    import dagster as dg
    from dagster._core.events import DagsterEventType

    def started() -> bool:
        with home.instance() as instance:
            for run in instance.get_runs(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
            ):
                for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START):
                    if entry.step_key == step_key:
                        return True
        return False

    return started


def kill_group(process: subprocess.Popen) -> None:
    """``kill -9`` the run's whole process group (its steps, dbt, torchrun) and reap it."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def table_contents(warehouse: Path) -> dict[str, pl.DataFrame]:
    """Every row of each table of ``TABLES`` that exists, in a canonical order.

    ``RUN_TIME_COLUMNS`` and the table's ``UNSTABLE_COLUMNS`` are left out; compare two results
    with ``assert_same_contents``, which allows floats their last bits.
    """
    contents = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        present = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
            ).fetchall()
        }
        for table in TABLES:
            if table not in present:
                continue
            columns = conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema || '.' || table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
            kept = [
                f'"{name}"'
                for (name,) in columns
                if name not in RUN_TIME_COLUMNS | UNSTABLE_COLUMNS.get(table, set())
            ]
            contents[table] = conn.execute(
                f"SELECT {', '.join(kept)} FROM {table} ORDER BY ALL"
            ).pl()
    return contents


def assert_same_contents(
    actual: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]
) -> None:
    """The same tables with the same rows; floats equal to 1e-9 relative.

    Not bit for bit: DuckDB sums doubles in an order that depends on how the work was split (a
    one-day re-run against the range build that made the rows, or threads), so a dwell mean or an
    interval std may differ in its last bit (measured: ≤ 3e-15 relative). Keys sort first in every
    table, so such a difference never reorders rows.
    """
    assert sorted(actual) == sorted(expected)
    for table, rows in expected.items():
        try:
            assert_frame_equal(actual[table], rows, rel_tol=1e-9, abs_tol=1e-12)
        except AssertionError as difference:
            raise AssertionError(f"{table} differs: {difference}") from difference


def day_row_counts(contents: dict[str, pl.DataFrame], day: date) -> dict[str, int]:
    """Per table of ``table_contents``: how many of its rows are of ``day``."""
    return {
        table: rows.filter(pl.col(TABLES[table]) == day).height for table, rows in contents.items()
    }
