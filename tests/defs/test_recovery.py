"""Recovery of dead runs on a real Dagster instance (sqlite, pools), with real dead processes and a
real MLflow store; the end-to-end kill tests are in test_fault_injection.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from anomaly_pipeline.defs.recovery import (
    HOST_TAG,
    PID_TAG,
    RecoveredRun,
    recover_dead_runs,
)
from anomaly_pipeline.processes import host_name, is_alive

POOL = "duckdb_warehouse"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def instance(tmp_path: Path):
    with dg.DagsterInstance.local_temp(
        str(tmp_path),
        overrides={"concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}},
    ) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 3)
        yield instance


def _started_run(
    instance: dg.DagsterInstance,
    *,
    host: str,
    pid: int | None,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED,
) -> dg.DagsterRun:
    tags = {HOST_TAG: host, **({PID_TAG: str(pid)} if pid is not None else {})}
    run = instance.add_run(
        dg.DagsterRun(job_name="daily_job", run_id=str(uuid.uuid4()), status=status, tags=tags)
    )
    instance.event_log_storage.claim_concurrency_slot(POOL, run.run_id, "raw_events")
    return run


def _holders(instance: dg.DagsterInstance) -> set[str]:
    return {s.run_id for s in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots}


def test_dead_run_is_failed_its_slot_freed_and_its_mlflow_run_killed(
    instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    dead = _started_run(instance, host=host_name(), pid=_dead_pid())
    alive = _started_run(instance, host=host_name(), pid=os.getpid())
    elsewhere = _started_run(instance, host="another-host", pid=_dead_pid())
    assert _holders(instance) == {dead.run_id, alive.run_id, elsewhere.run_id}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    mlflow_run = client.create_run(
        client.create_experiment("exp"), tags={"dagster_run_id": dead.run_id}
    ).info.run_id

    recovered = recover_dead_runs(instance, mlflow_tracking_uri=uri)

    assert recovered == [
        RecoveredRun(
            run_id=dead.run_id,
            job_name="daily_job",
            marked_failed=True,
            mlflow_runs_killed=[mlflow_run],
        )
    ]
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
    # a pid means nothing on another host: that run is left to its launcher's health check
    assert instance.get_run_by_id(elsewhere.run_id).status == dg.DagsterRunStatus.STARTED
    assert _holders(instance) == {alive.run_id, elsewhere.run_id}
    assert client.get_run(mlflow_run).info.status == "KILLED"
    assert recover_dead_runs(instance, mlflow_tracking_uri=uri) == []  # idempotent


def test_finished_run_still_holding_a_slot_is_freed(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. the code server reported the run failed when its worker died; the slot stayed."""
    monkeypatch.setenv("ANOMALY_PIPELINE_HOME", str(tmp_path / "home"))  # no MLflow store there
    failed = _started_run(
        instance, host="another-host", pid=None, status=dg.DagsterRunStatus.FAILURE
    )
    recovered = recover_dead_runs(instance)
    assert recovered == [
        RecoveredRun(
            run_id=failed.run_id, job_name="daily_job", marked_failed=False, mlflow_runs_killed=[]
        )
    ]
    assert _holders(instance) == set()


def test_pid_liveness_survives_reuse_and_zombies() -> None:
    assert is_alive(os.getpid(), time.time())
    assert not is_alive(_dead_pid(), time.time())
    # this process started long after the moment: a recorded process of that time is gone
    assert not is_alive(os.getpid(), time.time() - 3600)
    child = subprocess.Popen(["sleep", "30"])
    seen = time.time()
    assert is_alive(child.pid, seen)
    child.kill()
    time.sleep(0.3)  # killed, not yet reaped: a zombie runs nothing
    assert not is_alive(child.pid, seen)
    child.wait()


#: Users of the warehouse resource that never open the DuckDB file, and what they use it for.
NOT_OPENING_THE_FILE = {
    "model_evaluation": "the data home's MLflow store and artifacts",
    "champion_model": "the data home's MLflow store (moves the alias)",
    "baseline_models": "the data home's artifacts folder (the run's model bundles)",
    "anomaly_model": "the data home's artifacts folder (the run's model bundles)",
}


def test_every_step_that_opens_the_warehouse_is_in_its_pool() -> None:
    """DuckDB's lock makes a reader block a writer (and fail against one) across processes, so
    every asset and check that opens the file runs in the warehouse pool; a new user of the
    warehouse resource is pooled unless it is named above with what it uses instead."""
    from anomaly_pipeline.definitions import defs
    from anomaly_pipeline.defs.resources import WAREHOUSE_POOL

    users = {
        (node.node_def.name, node.node_def.pool)
        for node in [*defs.assets, *defs.asset_checks]
        if "warehouse" in node.required_resource_keys
    }
    assert {name for name, _ in users} >= {
        "raw_events",
        "dbt_feature_models",
        "training_set",
        "user_day_features_user_day_features_contract",
        "daily_anomaly_scores",
        *NOT_OPENING_THE_FILE,
    }
    assert {name for name, pool in users if pool != WAREHOUSE_POOL} == set(NOT_OPENING_THE_FILE)


def test_every_job_runs_on_the_recovering_executor() -> None:
    from anomaly_pipeline.definitions import defs
    from anomaly_pipeline.defs.recovery import recovering_executor

    for job in defs.jobs:
        assert defs.resolve_job_def(job.name).executor_def is recovering_executor, job.name


@pytest.mark.parametrize(
    ("choice", "multiprocess"),
    [
        (None, False),  # the code location's default: in_process (DEFAULT_EXECUTION)
        ({"in_process": {}}, False),
        ({"multiprocess": {}}, True),
        (
            {
                "celery": {
                    "broker": "redis://127.0.0.1:6379/0",
                    "backend": "redis://127.0.0.1:6379/1",
                }
            },
            True,
        ),
    ],
)
def test_the_executor_is_a_run_config_choice(choice: dict | None, multiprocess: bool) -> None:
    """Celery is one more choice of the same executor; a run that names none gets the default.
    Celery and multiprocess need what every cross-process executor needs (a persistent
    instance, a reconstructable job)."""
    from dagster._core.definitions.executor_definition import ExecutorRequirement

    from anomaly_pipeline.definitions import defs
    from anomaly_pipeline.defs.recovery import DEFAULT_EXECUTION, recovering_executor

    job = defs.resolve_job_def("daily_job")
    run_config = {"execution": {"config": choice}} if choice else {}
    resolved = dg.validate_run_config(job, run_config)["execution"][recovering_executor.name]
    assert set(resolved) == set(choice or DEFAULT_EXECUTION)
    required = recovering_executor.get_requirements(resolved)
    assert (ExecutorRequirement.NON_EPHEMERAL_INSTANCE in required) is multiprocess
    with pytest.raises(dg.DagsterInvalidConfigError, match="kubernetes"):
        dg.validate_run_config(job, {"execution": {"config": {"kubernetes": {}}}})
