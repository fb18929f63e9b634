"""The dbt step through Dagster: a subset builds only its models and runs only its tests; a
failing test fails the step with dbt's reason, stops what depends on it and keeps dbt's files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import Pipeline, materialize
from dbt_fixtures import build_warehouse

from anomaly_pipeline.defs.features.dbt import DBT_RUNS_DIR, MANIFEST
from anomaly_pipeline.simulate import SimulationConfig, simulate

DAY = date(2026, 3, 2)

pytestmark = pytest.mark.slow


@pytest.fixture
def raw_home(bare_home: Pipeline) -> Pipeline:
    """A data home whose raw tables hold one simulated day (as the ingest assets write them)."""
    simulation = simulate(SimulationConfig(start_day=DAY, n_days=1, n_users=40, seed=3))
    build_warehouse(bare_home.root, simulation.events, simulation.labels)
    return bare_home


def _tests_on(asset: str) -> set[str]:
    return {test.name for test in MANIFEST.tests if test.attached_to == asset}


def _runs() -> set[Path]:
    return set(DBT_RUNS_DIR.glob("*")) if DBT_RUNS_DIR.exists() else set()


def test_a_subset_builds_its_models_and_runs_only_their_tests(raw_home: Pipeline) -> None:
    runs_before = _runs()
    result = materialize(raw_home, dg.AssetSelection.assets("stg_events"), partition_key=str(DAY))

    assert result.success
    (event,) = result.get_asset_materialization_events()
    assert event.asset_key == dg.AssetKey("stg_events")
    assert event.materialization.metadata["dagster/row_count"].value > 0
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == _tests_on("stg_events")
    assert all(e.passed and e.metadata["dbt/execution_time_s"].value >= 0 for e in evaluations)
    with duckdb.connect(str(raw_home.warehouse), read_only=True) as con:
        built = {row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()}
    assert "stg_events" in built and "user_day_features" not in built
    assert _runs() == runs_before  # a successful build's folder is removed


def test_a_failing_source_test_fails_the_step_and_skips_the_models_below_it(
    raw_home: Pipeline,
) -> None:
    with duckdb.connect(str(raw_home.warehouse)) as con:
        con.execute(
            "insert into raw.raw_events select * replace ('bad-1' as event_id, null as user_id)"
            " from raw.raw_events limit 1"
        )
    source_checks = [
        dg.AssetCheckKey(dg.AssetKey("raw_events"), n) for n in _tests_on("raw_events")
    ]
    selection = dg.AssetSelection.assets("stg_events") | dg.AssetSelection.checks(*source_checks)
    runs_before = _runs()

    result = materialize(raw_home, selection, partition_key=str(DAY), raise_on_error=False)

    assert not result.success
    assert result.get_asset_materialization_events() == []  # dbt skipped stg_events
    verdicts = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(verdicts) == _tests_on("raw_events")
    failed = verdicts.pop("source_not_null_raw_raw_events_user_id")
    assert not failed.passed and failed.metadata["failing_rows"].value == 1
    assert all(e.passed for e in verdicts.values())
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "source_not_null_raw_raw_events_user_id" in message
    (kept,) = _runs() - runs_before  # dbt's artifacts and log stay for the on-call engineer
    assert str(kept) in message and (kept / "dbt.log").exists()
