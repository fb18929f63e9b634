"""The Dagster instance on PostgreSQL (resources/dagster-postgres.yaml) against a real PostgreSQL 15
server started here on 127.0.0.1 and stopped afterwards: a partitioned run, a sensor tick and a
backfill are recorded in its run, event-log and schedule storage."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from conftest import REPO_ROOT, free_port

from anomaly_pipeline.defs.ingest.assets import ACCOUNTING_CHECK

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INSTANCE_FILES = REPO_ROOT / "resources"
DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(2)]
#: The raw_events step alone: its assets and its own check (dbt's source tests would add a dbt run).
RAW_EVENTS_STEP = dg.AssetSelection.assets(
    "raw_events", "quarantined_events"
).without_checks() | dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("raw_events"), ACCOUNTING_CHECK)
)


def test_postgres_instance_keeps_the_embedded_instances_settings() -> None:
    """Everything but the storage is the same in both instance files (PostgreSQL's storage takes
    the place of the embedded instance's batching SQLite event log too)."""
    embedded = yaml.safe_load((INSTANCE_FILES / "dagster.yaml").read_text())
    postgres = yaml.safe_load((INSTANCE_FILES / "dagster-postgres.yaml").read_text())
    assert set(postgres.pop("storage")) == {"postgres"}
    embedded.pop("storage", None)
    assert embedded.pop("event_log_storage")["module"] == "anomaly_pipeline.instance.event_log"
    assert postgres == embedded


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1 (trust auth); DAGSTER_PG_* values for it."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL 15 binaries not found in {PG_BIN} (Debian package postgresql-15)")
    root = Path(tempfile.mkdtemp(prefix="anomaly_pg_"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "start",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "dagster",
                ]
            ),
            check=True,
            capture_output=True,
        )
        yield {
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_DB": "dagster",
        }
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_instance(
    postgres_server: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The instance of resources/dagster-postgres.yaml, with a data home of simulated days."""
    from anomaly_pipeline.paths import data_home
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    for name, value in postgres_server.items():
        monkeypatch.setenv(name, value)
    home = data_home(tmp_path).ensure()
    monkeypatch.setenv("ANOMALY_PIPELINE_HOME", str(tmp_path))  # the code server's data home
    write_landing(
        simulate(SimulationConfig(start_day=DAYS[0], n_days=len(DAYS), n_users=40, seed=3)),
        home.landing_events,
        home.landing_labels,
    )
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(INSTANCE_FILES / "dagster-postgres.yaml", dagster_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        yield instance


@pytest.mark.slow
def test_runs_events_ticks_and_backfills_are_stored_in_postgres(
    postgres_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    from conftest import all_definitions, pipeline_resources
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster._daemon.sensor import execute_sensor_iteration
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    instance = postgres_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)

    # A partitioned run (two days as one run): per-day materializations and check evaluations.
    result = dg.materialize(
        all_definitions(),
        selection=RAW_EVENTS_STEP,
        instance=instance,
        resources=pipeline_resources(tmp_path),
        tags={
            "dagster/asset_partition_range_start": DAYS[0].isoformat(),
            "dagster/asset_partition_range_end": DAYS[-1].isoformat(),
        },
    )
    assert result.success
    assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    for day in DAYS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey("raw_events"), asset_partitions=[day.isoformat()]
            ),
            limit=1,
        )
        assert records.records and records.records[0].run_id == result.run_id

    target = ModuleTarget(
        module_name="anomaly_pipeline.definitions",
        attribute=None,
        working_directory=str(REPO_ROOT),
        location_name="anomaly_pipeline",
    )
    logger = logging.getLogger("postgres_instance_test")
    with create_test_daemon_workspace_context(target, instance) as workspace:
        request_context = workspace.create_request_context()
        (location,) = request_context.code_locations
        repository = next(iter(location.get_repositories().values()))

        # A sensor tick, as the daemon evaluates it: the landing sensor requests both days.
        sensor = repository.get_sensor("landing_zone_sensor")
        instance.start_sensor(sensor)
        list(execute_sensor_iteration(workspace, logger, None, None))
        (tick,) = instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        assert tick.status == TickStatus.SUCCESS and len(tick.run_ids) == len(DAYS)
        queued = instance.get_runs(filters=dg.RunsFilter(run_ids=list(tick.run_ids)))
        assert {r.tags["dagster/partition"] for r in queued} == {d.isoformat() for d in DAYS}

        # A backfill of both days, launched by the backfill daemon as one run (single-run policy).
        backfill_id = uuid.uuid4().hex[:8]
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=request_context.asset_graph,
                partition_names=[d.isoformat() for d in DAYS],
                asset_selection=list(RAW_EVENTS_STEP.resolve(request_context.asset_graph)),
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
        )
        list(execute_backfill_iteration(workspace, logger))
        backfill = instance.get_backfill(backfill_id)
        assert backfill.status == BulkActionStatus.REQUESTED
        (run,) = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))
        assert run.tags["dagster/asset_partition_range_start"] == DAYS[0].isoformat()
        assert run.tags["dagster/asset_partition_range_end"] == DAYS[-1].isoformat()
