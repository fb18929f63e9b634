"""The project's event log (``BatchingSqliteEventLogStorage``) stores what Dagster's own SQLite
event log stores for the same run, and a batch that fails stores nothing of itself."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from anomaly_pipeline.instance import open_instance
from anomaly_pipeline.instance.event_log import BATCH_SIZE_VARIABLE, BatchingSqliteEventLogStorage

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRST_DAY = date(2025, 3, 1)
DAYS = 3


@pytest.fixture(autouse=True)
def batch_size_variable() -> Iterator[None]:
    """The variable the project's storage sets for its process, restored after each test."""
    before = os.environ.pop(BATCH_SIZE_VARIABLE, None)
    yield
    os.environ.pop(BATCH_SIZE_VARIABLE, None)
    if before is not None:
        os.environ[BATCH_SIZE_VARIABLE] = before


@pytest.fixture(scope="module")
def daily_job() -> dg.JobDefinition:
    from anomaly_pipeline.definitions import defs

    return defs.resolve_job_def("daily_job")


def _instance(home: Path, *, dagster_event_log: bool) -> dg.DagsterInstance:
    """The project's instance in ``home``, or the same with Dagster's own SQLite event log."""
    home.mkdir(parents=True)
    config = yaml.safe_load((REPO_ROOT / "resources" / "dagster.yaml").read_text())
    if dagster_event_log:
        del config["event_log_storage"]
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return open_instance(home)


def _range_run(instance: dg.DagsterInstance, job: dg.JobDefinition) -> str:
    """Create (not execute) a ``daily_job`` run over ``DAYS`` days: its planned events."""
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    run = instance.create_run_for_job(
        job,
        tags={
            "dagster/asset_partition_range_start": FIRST_DAY.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
    )
    return run.run_id


def _events(instance: dg.DagsterInstance, run_id: str) -> Counter[tuple[Any, ...]]:
    """The run's stored events without ids and times: type, asset, partition, check."""
    stored: Counter[tuple[Any, ...]] = Counter()
    for record in instance.get_records_for_run(run_id, limit=100_000).records:
        event = record.event_log_entry.dagster_event
        assert event is not None
        planned_check = (
            event.asset_check_planned_data.check_name
            if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
            else None
        )
        stored[(event.event_type_value, event.asset_key, event.partition, planned_check)] += 1
    return stored


def _check_rows(home: Path) -> list[tuple[Any, ...]]:
    """The planned asset-check rows of the cross-run index, one per check and partition."""
    with sqlite3.connect(home / "history" / "runs" / "index.db") as connection:
        return sorted(
            connection.execute(
                "SELECT asset_key, check_name, partition, execution_status "
                "FROM asset_check_executions"
            ).fetchall()
        )


def _attempted(instance: dg.DagsterInstance, job: dg.JobDefinition) -> dict[str, set[str]]:
    """Per asset, the partitions planned but not materialized: what the UI marks failed when the
    run fails."""
    storage = instance.event_log_storage
    return {
        key.to_user_string(): set(
            storage.get_latest_asset_partition_materialization_attempts_without_materializations(
                key
            )
        )
        for key in job.asset_layer.executable_asset_keys
    }


def test_a_range_run_stores_the_same_records_as_dagsters_event_log(
    tmp_path: Path, daily_job: dg.JobDefinition
) -> None:
    dagster_home, project_home = tmp_path / "dagster_sqlite", tmp_path / "project"
    dagster_instance = _instance(dagster_home, dagster_event_log=True)
    project_instance = _instance(project_home, dagster_event_log=False)
    assert isinstance(project_instance.event_log_storage, BatchingSqliteEventLogStorage)
    assert os.environ[BATCH_SIZE_VARIABLE] != "0"

    dagster_events = _events(dagster_instance, _range_run(dagster_instance, daily_job))
    project_events = _events(project_instance, _range_run(project_instance, daily_job))

    planned = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value
    assert sum(n for key, n in project_events.items() if key[0] == planned) == DAYS * len(
        daily_job.asset_layer.executable_asset_keys
    )
    assert project_events == dagster_events
    assert _check_rows(project_home) == _check_rows(dagster_home) != []
    attempted = _attempted(project_instance, daily_job)
    assert attempted == _attempted(dagster_instance, daily_job)
    days = {(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DAYS)}
    assert all(partitions == days for partitions in attempted.values())


def test_a_failing_batch_stores_none_of_its_events(
    tmp_path: Path, daily_job: dg.JobDefinition
) -> None:
    source = _instance(tmp_path / "source", dagster_event_log=True)
    run_id = _range_run(source, daily_job)
    entries = [r.event_log_entry for r in source.get_records_for_run(run_id, limit=10_000).records]
    project = _instance(tmp_path / "project", dagster_event_log=False)
    storage = project.event_log_storage

    # The last "event" fails Dagster's own argument check after the others were written.
    with pytest.raises(Exception, match="EventLogEntry"):
        storage.store_event_batch([*entries, None])

    assert storage.get_records_for_run(run_id).records == []
    assert _check_rows(tmp_path / "project") == []
    storage.store_event_batch(entries)
    assert _events(project, run_id) == _events(source, run_id)
