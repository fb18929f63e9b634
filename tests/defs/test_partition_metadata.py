"""A multi-day (single-run backfill) run records each day's own figures: row counts per partition
of raw_events, the dbt models and the scores, top users of that day only, and one evaluation per
day of every partitioned check, read back from the instance's event log. And a fresh history —
all warm-up days, as after `make demo` — raises no drift verdict and so no retraining."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest
from conftest import Pipeline, materialize
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from anomaly_pipeline import warehouse
from anomaly_pipeline.defs.jobs import SCORING

pytestmark = pytest.mark.slow

#: Asset → the table whose rows per day its partitions must report.
INGEST_TABLES = {
    "raw_events": "raw.raw_events",
    "quarantined_events": "raw.quarantined_events",
    "stg_events": "features.stg_events",
    "int_sessions": "features.int_sessions",
    "int_user_day_access": "features.int_user_day_access",
    "int_user_day_milestones": "features.int_user_day_milestones",
    "user_day_features": "features.user_day_features",
    "behaviour_sequences": "features.behaviour_sequences",
}
SCORING_TABLES = {
    "daily_anomaly_scores": "scoring.daily_anomaly_scores",
    "anomaly_alerts": "scoring.anomaly_alerts",
    "feature_drift": "monitoring.feature_drift",
}


def _partition_metadata(instance: dg.DagsterInstance, asset: str, day: date) -> dict:
    (record,) = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day.isoformat()]),
        limit=1,
    ).records
    return record.asset_materialization.metadata


def _check_records(instance: dg.DagsterInstance, asset: str, check: str, run_id: str) -> dict:
    """Partition → status of that check's evaluations in ``run_id``."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(asset), check), limit=1000
    )
    return {r.partition: r.status for r in history if r.run_id == run_id}


def _assert_row_counts_per_day(
    pipeline: Pipeline, tables: dict[str, str], days: list[date]
) -> None:
    for asset, table in tables.items():
        stored = warehouse.count_by_day(pipeline.warehouse, table, days)
        reported = {
            day: _partition_metadata(pipeline.instance, asset, day)["dagster/row_count"].value
            for day in days
        }
        assert reported == stored, asset
    # Not the range's total copied onto every day: the simulated days differ in size.
    raw = {
        _partition_metadata(pipeline.instance, "raw_events", d)["dagster/row_count"].value
        for d in days
    }
    assert len(raw) > 1


def test_range_run_reports_row_counts_per_partition(ingested_pipeline: Pipeline) -> None:
    _assert_row_counts_per_day(ingested_pipeline, INGEST_TABLES, ingested_pipeline.days)
    day = ingested_pipeline.days[2]
    raw = _partition_metadata(ingested_pipeline.instance, "raw_events", day)
    assert raw["files"].value == [f"events_{day.isoformat()}.parquet"]
    assert raw["input_rows"].value == (
        raw["dagster/row_count"].value
        + _partition_metadata(ingested_pipeline.instance, "quarantined_events", day)[
            "dagster/row_count"
        ].value
    )


def test_range_run_records_partitioned_checks_per_day(ingested_pipeline: Pipeline) -> None:
    instance = ingested_pipeline.instance
    (run,) = instance.get_runs(
        limit=1,
        filters=dg.RunsFilter(
            tags={"dagster/asset_partition_range_start": ingested_pipeline.days[0].isoformat()}
        ),
    )
    expected = {
        d.isoformat(): AssetCheckExecutionRecordStatus.SUCCEEDED for d in ingested_pipeline.days
    }
    for asset, check in (
        ("raw_events", "accepted_plus_quarantined_equals_input"),
        ("user_day_features", "user_day_features_contract"),
    ):
        assert _check_records(instance, asset, check, run.run_id) == expected, check


@pytest.fixture(scope="module")
def scored_range(trained_pipeline: Pipeline) -> tuple[Pipeline, list[date], str]:
    """Scores, alerts and drift of every simulated day as one run, as the demo does."""
    days = trained_pipeline.days
    result = materialize(trained_pipeline, SCORING, tags=trained_pipeline.range_tags(days))
    assert result.success
    return trained_pipeline, days, result.run_id


def test_scoring_range_reports_each_days_own_figures(scored_range) -> None:
    pipeline, days, _ = scored_range
    _assert_row_counts_per_day(pipeline, SCORING_TABLES, days)
    for day in days:
        metadata = _partition_metadata(pipeline.instance, "daily_anomaly_scores", day)
        top = metadata["top_users"].value
        assert day.isoformat() in top
        assert not any(other.isoformat() in top for other in days if other != day)
        flagged = warehouse.read_days(
            pipeline.warehouse, "scoring.daily_anomaly_scores", [day], columns=["flagged"]
        )["flagged"].sum()
        assert metadata["flagged"].value == flagged


def test_scoring_range_records_its_checks_per_day(scored_range) -> None:
    pipeline, days, run_id = scored_range
    for asset, check in (
        ("feature_drift", "drift_within_thresholds"),
        ("daily_anomaly_scores", "alert_guard"),
    ):
        records = _check_records(pipeline.instance, asset, check, run_id)
        assert set(records) == {d.isoformat() for d in days}, check
        assert set(records.values()) <= {
            AssetCheckExecutionRecordStatus.SUCCEEDED,
            AssetCheckExecutionRecordStatus.FAILED,
        }, check


def test_fresh_history_triggers_no_drift_retraining(scored_range) -> None:
    from anomaly_pipeline.defs.monitoring.automation import drift_retraining_sensor
    from anomaly_pipeline.drift import DriftThresholds, assess
    from anomaly_pipeline.feature_contract import HISTORY_FEATURES

    pipeline, days, _ = scored_range
    table = warehouse.read_days(pipeline.warehouse, "monitoring.feature_drift", days)
    first_day = table.filter(pl.col("event_day") == days[0]).drop("event_day", "model_version")
    # What made a fresh demo retrain: the first day's history features, judged as drifted.
    unguarded = assess(first_day, DriftThresholds())
    assert unguarded.drifted and set(unguarded.drifted_features) <= set(HISTORY_FEATURES)
    # Every simulated day is a warm-up day: history features stay out of every verdict.
    assert not table.filter(pl.col("feature").is_in(HISTORY_FEATURES))["drifted"].any()
    for day in days:
        (record,) = pipeline.instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("feature_drift"), "drift_within_thresholds"),
            limit=1,
            partition_filter=PartitionKeyFilter(key=day.isoformat()),
        )
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["warm_up"].value is True
    tick = drift_retraining_sensor(dg.build_sensor_context(instance=pipeline.instance))
    assert not tick.run_requests, tick.skip_reason
