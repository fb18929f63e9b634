"""daily_job on the Celery executor: a Redis broker (Debian's redis-server) started here on
127.0.0.1, a dagster-celery worker that loads this code location from the repo (same python
environment, same data directory), and a run whose every step executes in that worker — not in the
run's own process — and writes the day's tables. Worker and broker are stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from cli_runs import Home, assert_same_contents, day_row_counts, run_job, table_contents, wait_for
from conftest import REPO_ROOT, Pipeline, free_port

from anomaly_pipeline.defs.recovery import PID_TAG

pytestmark = pytest.mark.slow

REDIS_SERVER = Path("/usr/bin/redis-server")
#: The worker's config file; a run takes the same block as its executor choice ``celery``.
CELERY_FILE = REPO_ROOT / "resources" / "celery.yaml"
CELERY_CONFIG = yaml.safe_load(CELERY_FILE.read_text())["execution"]["config"]
BIN = Path(sys.executable).parent
WORKER = "pipeline"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway Redis server on 127.0.0.1 (no persistence), stopped after the test."""
    if not REDIS_SERVER.exists():
        pytest.skip(f"{REDIS_SERVER} not found (Debian package redis-server; .ci/run installs it)")
    import redis

    port = free_port()
    with open(tmp_path / "redis.log", "w") as log:
        server = subprocess.Popen(
            [
                *(REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url).ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=20, what="redis-server to answer PING", process=server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def celery_worker(
    trained_pipeline: Pipeline, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Home, subprocess.Popen]]:
    """A copy of the trained data directory and a worker serving it (its own process group)."""
    # the variables resources/celery.yaml reads: Redis databases 0 (broker) and 1 (results)
    for database, key in enumerate(("broker", "backend")):
        monkeypatch.setenv(CELERY_CONFIG[key]["env"], f"{redis_url}/{database}")
    home = Home(trained_pipeline.root).copy_to(tmp_path / "home")
    home.configure_instance()  # the session's instance has no dagster.yaml (pools)
    log_path = home.root / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [
                *(BIN / "dagster-celery", "worker", "start", "-A", "dagster_celery.app"),
                *("-y", str(CELERY_FILE), "--name", WORKER, "--", "--concurrency=1"),
            ],
            cwd=REPO_ROOT,
            # the CLI starts `celery` from PATH: this environment's
            env={**home.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: " ready." in log_path.read_text(errors="replace"),
            timeout=60,
            what="the celery worker to be ready",
            process=worker,
        )
        yield home, worker
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # celery's warm shutdown
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)


def test_daily_job_steps_execute_on_a_celery_worker(
    trained_pipeline: Pipeline, celery_worker: tuple[Home, subprocess.Popen]
) -> None:
    home, worker = celery_worker
    day = trained_pipeline.days[-1]
    warehouse = home.root / "warehouse.duckdb"
    before = table_contents(warehouse)
    executor = {"celery": CELERY_CONFIG}

    started = time.perf_counter()
    run_job(home, "daily_job", days=[day], executor=executor, timeout=300)
    print(f"daily_job on the celery worker: {time.perf_counter() - started:.0f} s")

    with home.instance() as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="daily_job"))
        planned = set(
            instance.get_execution_plan_snapshot(
                run.execution_plan_snapshot_id
            ).step_keys_to_execute
        )
        starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        successes = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        delegated = [
            e.dagster_event.event_specific_data.metadata["Celery worker"].value
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if "in celery worker" in e.message
        ]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert {e.step_key for e in starts} == {e.step_key for e in successes} == planned
    # every step ran in a process of the worker's group, none in the run's orchestrating process
    step_pids = {e.dagster_event.pid for e in starts}
    assert int(run.tags[PID_TAG]) not in step_pids
    assert {os.getpgid(pid) for pid in step_pids} == {worker.pid}
    assert len(delegated) == len(planned) and {h.split("@")[0] for h in delegated} == {WORKER}
    worker_log = (home.root / "worker.log").read_text(errors="replace")
    assert worker_log.count("succeeded in") == len(planned)

    after = table_contents(warehouse)
    # the day's ingest and feature tables are rewritten as they were (no duplicates) …
    assert_same_contents({t: after[t] for t in before}, before)
    # … and it has one score per user-day and drift statistics (written by the steps above; the
    # session's pipeline may have been scored by an earlier test, so the counts, not the tables'
    # absence before, are what show nothing was duplicated)
    day_rows = day_row_counts(after, day)
    assert day_rows["scoring.daily_anomaly_scores"] == day_rows["features.user_day_features"] > 0
    assert day_rows["monitoring.feature_drift"] > 0
