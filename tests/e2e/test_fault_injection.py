"""kill -9 of real runs at the worst moments, then a re-run with no hand step.

Each test starts `dagster job execute` as its own process group on a copy of a snapshot of one
clean run, waits for the moment in the run's event log (or on disk), kills the whole group, and
runs the job again. The re-run must start (a dead run's pool slot does not block it), complete,
and leave every table equal to the clean run's: per-day row counts and an order-independent
checksum. A killed training must leave the model registry and the champion alias untouched.
The last test runs a daily run, a retrain and the feature-contract check at the same time.
"""

from __future__ import annotations

import glob
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from cli_runs import (
    Home,
    assert_same_contents,
    kill_group,
    run_job,
    start_job,
    step_started,
    table_contents,
    wait_for,
)
from dagster._core.events import DagsterEventType

pytestmark = pytest.mark.slow

START = date(2026, 10, 1)
DAYS = [START + timedelta(days=i) for i in range(5)]
TRAINING = {
    "training_set": {"config": {"window_days": len(DAYS), "validation_days": 1, "holdout_days": 2}},
    "anomaly_model": {"config": {"max_epochs": 1, "batch_size": 256}},
}
LOCK_ERROR = "Could not set lock"


@dataclass
class CleanRun:
    """Snapshots of one uninterrupted run: before ingest, after ingest, after training, final."""

    landing: Home
    ingested: Home
    trained: Home
    ingested_tables: dict[str, Any]
    final_tables: dict[str, Any]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    from anomaly_pipeline.paths import data_home
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    base = tmp_path_factory.mktemp("fault")
    home = Home.create(base / "clean")
    landing = data_home(home.root).ensure()
    write_landing(
        simulate(
            SimulationConfig(
                start_day=START, n_days=len(DAYS), n_users=150, seed=11, anomaly_share=0.1
            )
        ),
        landing.landing_events,
        landing.landing_labels,
    )
    snapshot_landing = home.copy_to(base / "landing")
    run_job(home, "ingest_features_job", days=DAYS)
    snapshot_ingested = home.copy_to(base / "ingested")
    ingested_tables = table_contents(home.root / "warehouse.duckdb")
    run_job(home, "training_job", ops=TRAINING)
    snapshot_trained = home.copy_to(base / "trained")
    run_job(home, "scoring_job", days=DAYS)
    return CleanRun(
        landing=snapshot_landing,
        ingested=snapshot_ingested,
        trained=snapshot_trained,
        ingested_tables=ingested_tables,
        final_tables=table_contents(home.root / "warehouse.duckdb"),
    )


def _assert_tables_equal(home: Home, expected: dict[str, Any]) -> None:
    assert_same_contents(table_contents(home.root / "warehouse.duckdb"), expected)


def _only_run(instance: dg.DagsterInstance, job: str) -> dg.DagsterRun:
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name=job))
    return run


def _slot_holders(instance: dg.DagsterInstance, pool: str) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(pool)
    return {slot.run_id for slot in info.claimed_slots}


def _registry(home: Home) -> tuple[list[tuple[str, str]], str | None]:
    """(version, source) of every registered version and the champion's version, if any."""
    from anomaly_pipeline.model_registry import REGISTERED_MODEL, get_champion

    uri = f"sqlite:///{home.root / 'mlflow.db'}"
    if not (home.root / "mlflow.db").exists():
        return [], None
    from mlflow import MlflowClient

    versions = MlflowClient(uri, registry_uri=uri).search_model_versions(
        f"name = '{REGISTERED_MODEL}'"
    )
    champion = get_champion(uri)
    return (
        sorted((str(v.version), v.source) for v in versions),
        str(champion.version) if champion else None,
    )


def _mlflow_status(home: Home, dagster_run_id: str) -> list[str]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(f"sqlite:///{home.root / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [
        run.info.status
        for run in client.search_runs(
            experiments,
            filter_string=f"tags.dagster_run_id = '{dagster_run_id}'",
            run_view_type=ViewType.ALL,
        )
    ]


def test_killed_raw_events_frees_its_pool_slot_and_the_rerun_completes(
    clean: CleanRun, tmp_path: Path
) -> None:
    """The default multiprocess executor: the killed run held the duckdb_warehouse slot."""
    home = clean.landing.copy_to(tmp_path / "home")
    process = start_job(home, "ingest_features_job", days=DAYS, in_process=False)
    wait_for(
        step_started(home, "raw_events"), timeout=120, what="raw_events to start", process=process
    )
    kill_group(process)
    with home.instance() as instance:
        killed = _only_run(instance, "ingest_features_job")
        assert killed.status == dg.DagsterRunStatus.STARTED  # nobody could report its end
        assert _slot_holders(instance, "duckdb_warehouse") == {killed.run_id}

    run_job(home, "ingest_features_job", days=DAYS, log_name="rerun.log")

    with home.instance() as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert _slot_holders(instance, "duckdb_warehouse") == set()
    _assert_tables_equal(home, clean.ingested_tables)


def test_killed_dbt_build_rerun_equals_a_clean_run(clean: CleanRun, tmp_path: Path) -> None:
    home = clean.landing.copy_to(tmp_path / "home")
    process = start_job(home, "ingest_features_job", days=DAYS)

    def dbt_mid_build() -> bool:  # stg_events built, the rest of the dbt build still running
        with home.instance() as instance:
            return instance.get_latest_materialization_event(dg.AssetKey("stg_events")) is not None

    wait_for(dbt_mid_build, timeout=180, what="dbt to build stg_events", process=process)
    kill_group(process)
    run_job(home, "ingest_features_job", days=DAYS, log_name="rerun.log")
    _assert_tables_equal(home, clean.ingested_tables)


def test_killed_scoring_rerun_equals_a_clean_run(clean: CleanRun, tmp_path: Path) -> None:
    home = clean.trained.copy_to(tmp_path / "home")
    process = start_job(home, "scoring_job", days=DAYS)
    wait_for(
        step_started(home, "daily_anomaly_scores"),
        timeout=120,
        what="daily_anomaly_scores to start",
        process=process,
    )
    kill_group(process)
    run_job(home, "scoring_job", days=DAYS, log_name="rerun.log")
    _assert_tables_equal(home, clean.final_tables)


def test_killed_training_leaves_the_registry_untouched(clean: CleanRun, tmp_path: Path) -> None:
    """Killed while the sequence model trains — after the baselines and the autoencoder were
    logged to MLflow: no version, no alias, and the run's MLflow run ends KILLED, not FINISHED."""
    home = clean.ingested.copy_to(tmp_path / "home")
    before = _registry(home)
    process = start_job(home, "training_job", ops=TRAINING)
    wait_for(
        lambda: bool(glob.glob(str(home.root / "artifacts/models/*/sequence/spec.json"))),
        timeout=240,
        what="the sequence model's training to start",
        process=process,
    )
    time.sleep(1.0)  # torchrun is up and training
    kill_group(process)
    assert _registry(home) == before
    with home.instance() as instance:
        killed = _only_run(instance, "training_job")
    assert _mlflow_status(home, killed.run_id) == ["RUNNING"]  # nobody could end it

    run_job(home, "training_job", ops=TRAINING, log_name="rerun.log")

    with home.instance() as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        rerun = next(
            r
            for r in instance.get_runs(filters=dg.RunsFilter(job_name="training_job"))
            if r.run_id != killed.run_id
        )
    assert _mlflow_status(home, killed.run_id) == ["KILLED"]
    versions, champion = _registry(home)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home.root / 'mlflow.db'}")
    assert {
        client.get_model_version("anomaly_detector", v).tags["dagster_run_id"] for v, _ in versions
    } == {rerun.run_id}
    assert champion in {v for v, _ in versions}


_CONTRACT_CHECK = """
import sys, dagster as dg
from anomaly_pipeline.definitions import defs
check = dg.AssetCheckKey(dg.AssetKey("user_day_features"), "user_day_features_contract")
checks_job = dg.define_asset_job("contract_checks", selection=dg.AssetSelection.checks(check))
job = dg.Definitions.merge(defs, dg.Definitions(jobs=[checks_job])).resolve_job_def(
    "contract_checks")
with dg.DagsterInstance.get() as instance:
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": sys.argv[1],
        "dagster/asset_partition_range_end": sys.argv[2]})
sys.exit(0 if result.success else 1)
"""


def test_daily_run_retrain_and_checks_at_once_hit_no_lock(clean: CleanRun, tmp_path: Path) -> None:
    home = clean.trained.copy_to(tmp_path / "home")
    started = time.perf_counter()
    daily = start_job(home, "daily_job", days=DAYS[-1:])
    retrain = start_job(home, "training_job", ops=TRAINING)
    with open(home.root / "checks.log", "w") as checks_log:
        checks = subprocess.Popen(
            [sys.executable, "-c", _CONTRACT_CHECK, DAYS[0].isoformat(), DAYS[-1].isoformat()],
            env=home.env,
            stdout=checks_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    codes = {
        name: process.wait(timeout=600)
        for name, process in (("daily", daily), ("retrain", retrain), ("checks", checks))
    }
    logs = {
        name: (home.root / f"{name}.log").read_text(errors="replace")
        for name in ("daily_job", "training_job", "checks")
    }
    assert not [name for name, text in logs.items() if LOCK_ERROR in text]
    assert codes["daily"] == 0 and codes["checks"] == 0, logs
    with home.instance() as instance:
        retrain_run = next(
            r
            for r in instance.get_runs(filters=dg.RunsFilter(job_name="training_job"))
            if r.run_id not in _run_ids(clean.trained)
        )
        materialized = {
            e.dagster_event.asset_key.path[-1]
            for e in instance.all_logs(
                retrain_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
            )
        }
        (gate,) = [
            e.dagster_event.event_specific_data
            for e in instance.all_logs(
                retrain_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
            )
            if e.dagster_event.event_specific_data.check_name == "champion_gate"
        ]
    assert {"training_set", "baseline_models", "anomaly_model", "model_evaluation"} <= materialized
    # Same days, same seed as the champion: whether the gate promotes is the gate's business;
    # the retrain run succeeds exactly when it does.
    assert codes["retrain"] == (0 if gate.passed else 1), logs["training_job"][-3000:]
    print(f"three concurrent runs finished in {time.perf_counter() - started:.0f} s")


def _run_ids(home: Home) -> set[str]:
    with home.instance() as instance:
        return {r.run_id for r in instance.get_runs()}
