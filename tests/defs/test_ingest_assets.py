"""raw_events / event_labels through Dagster: accounting, idempotency, bad files, missing days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import Pipeline, materialize

from anomaly_pipeline import warehouse
from anomaly_pipeline.ingest import INGEST_LOG_TABLE, QUARANTINE_TABLE, RAW_EVENTS_TABLE
from anomaly_pipeline.paths import data_home
from anomaly_pipeline.schema import conform

DAY = date(2026, 10, 3)
#: raw_events is one multi-asset with its quarantine: they are always materialised together.
RAW = dg.AssetSelection.assets("raw_events", "quarantined_events")


def _counts(path: Path, table: str) -> int:
    with warehouse.connect(path, read_only=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_every_landing_row_is_accepted_or_quarantined(ingested_pipeline: Pipeline) -> None:
    landed = ingested_pipeline.simulation.events.height
    accepted = _counts(ingested_pipeline.warehouse, RAW_EVENTS_TABLE)
    quarantined = _counts(ingested_pipeline.warehouse, QUARANTINE_TABLE)
    assert accepted + quarantined == landed
    assert accepted > 0.99 * landed  # the simulator writes clean data


def test_rematerialising_a_partition_duplicates_nothing(ingested_pipeline: Pipeline) -> None:
    tables = (
        RAW_EVENTS_TABLE,
        QUARANTINE_TABLE,
        INGEST_LOG_TABLE,
        "raw.event_labels",
        "features.stg_events",
        "features.user_day_features",
        "features.behaviour_sequences",
    )
    before = {t: _counts(ingested_pipeline.warehouse, t) for t in tables}
    from anomaly_pipeline.defs.jobs import INGEST_FEATURES

    result = materialize(ingested_pipeline, INGEST_FEATURES, partition_key=DAY.isoformat())
    assert result.success
    assert {t: _counts(ingested_pipeline.warehouse, t) for t in tables} == before
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["accepted_plus_quarantined_equals_input"] is True
    assert checks["user_day_features_contract"] is True


def _event(event_id: str, user: str = "u1", **extra: object) -> dict:
    return {
        "event_id": event_id,
        "user_id": user,
        "event_type": "view",
        "event_time": datetime(2026, 10, 3, 12, tzinfo=UTC),
        **extra,
    }


def test_dirty_rows_are_quarantined_with_reasons(bare_home: Pipeline) -> None:
    landing = data_home(bare_home.root).landing_events
    events = conform(
        pl.DataFrame(
            [
                _event("e1"),
                _event("e1"),
                _event("e2", user=""),
                _event("e3", amount=-5.0),
                _event("e4", event_type="teleport"),
                _event("e5", event_time=datetime(2026, 10, 2, 23, 59, tzinfo=UTC)),
            ]
        )
    )
    events.write_parquet(landing / f"events_{DAY}.parquet")
    result = materialize(bare_home, RAW, partition_key=DAY.isoformat())
    assert result.success
    raw = warehouse.read_days(bare_home.root / "warehouse.duckdb", RAW_EVENTS_TABLE, [DAY])
    bad = warehouse.read_days(bare_home.root / "warehouse.duckdb", QUARANTINE_TABLE, [DAY])
    assert raw["event_id"].to_list() == ["e1"]
    assert raw.height + bad.height == events.height
    assert set(bad["rule"]) >= {"duplicate_event_id", "unknown_event_type", "negative_amount"}
    assert bad.filter(pl.col("rule") == "duplicate_event_id")["reason"][0]


def test_malformed_file_fails_the_partition_and_changes_nothing(bare_home: Pipeline) -> None:
    landing = data_home(bare_home.root).landing_events
    conform(pl.DataFrame([_event("ok")])).write_parquet(landing / f"events_{DAY}.parquet")
    assert materialize(bare_home, RAW, partition_key=DAY.isoformat()).success
    (landing / f"events_{DAY}.parquet").write_bytes(b"\x00\x01 this is not parquet \xff")
    result = materialize(bare_home, RAW, partition_key=DAY.isoformat(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"events_{DAY}.parquet" in failure.event_specific_data.error.to_string()
    raw = warehouse.read_days(bare_home.root / "warehouse.duckdb", RAW_EVENTS_TABLE, [DAY])
    assert raw["event_id"].to_list() == ["ok"]  # the earlier load is untouched


def test_missing_landing_file_names_the_day(bare_home: Pipeline) -> None:
    result = materialize(bare_home, RAW, partition_key=DAY.isoformat(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"no landing file for {DAY}" in failure.event_specific_data.error.to_string()


@pytest.mark.slow
def test_backfilling_seven_days_in_one_run_duplicates_nothing(ingested_pipeline: Pipeline) -> None:
    """The on-call path: the whole range again, as one run (single-run backfill policy)."""
    from anomaly_pipeline.defs.jobs import INGEST_FEATURES

    assert len(ingested_pipeline.days) == 7
    tables = (
        RAW_EVENTS_TABLE,
        QUARANTINE_TABLE,
        "features.stg_events",
        "features.int_sessions",
        "features.user_day_features",
        "features.behaviour_sequences",
    )
    before = {t: _counts(ingested_pipeline.warehouse, t) for t in tables}
    runs_before = len(ingested_pipeline.instance.get_runs())
    result = materialize(ingested_pipeline, INGEST_FEATURES, tags=ingested_pipeline.range_tags())
    assert result.success
    assert len(ingested_pipeline.instance.get_runs()) == runs_before + 1
    assert {t: _counts(ingested_pipeline.warehouse, t) for t in tables} == before
    with warehouse.connect(ingested_pipeline.warehouse, read_only=True) as conn:
        duplicated = conn.execute("""SELECT count(*) FROM (SELECT user_key, event_day
            FROM features.user_day_features GROUP BY 1, 2 HAVING count(*) > 1)""").fetchone()[0]
        days = conn.execute("SELECT count(DISTINCT event_day) FROM raw.raw_events").fetchone()[0]
    assert duplicated == 0 and days == 7


def test_launchpad_time_options_read_a_daily_fraud_log(bare_home: Pipeline) -> None:
    landing = data_home(bare_home.root).landing_events
    (landing / f"fraud_{DAY}.csv").write_text(
        "user_id,signup_time,purchase_time,purchase_value,device_id,source,browser,ip_address\n"
        "u1,10/3/2026 9:15,10/4/2026 1:30,20,d1,SEO,Chrome,10.0.0.1\n"
        "u2,10/3/2026 25:00,10/3/2026 1:00,20,d2,Ads,Safari,10.0.0.2\n"
    )
    config = {
        "source_format": "fraud_log",
        "file_pattern": "fraud_{day}.csv",
        "time_format": "%m/%d/%Y %H:%M",
        "timezone": "Europe/Berlin",
    }
    result = materialize(
        bare_home,
        RAW,
        partition_key=DAY.isoformat(),
        run_config={"ops": {"raw_events": {"config": config}}},
    )
    assert result.success
    raw = warehouse.read_days(bare_home.root / "warehouse.duckdb", RAW_EVENTS_TABLE, [DAY])
    bad = warehouse.read_days(bare_home.root / "warehouse.duckdb", QUARANTINE_TABLE, [DAY])
    # CEST = UTC+2: 10/4 1:30 in Berlin is 10/3 23:30 UTC, 10/3 1:00 is 10/2 23:00 UTC
    assert raw.sort("event_time")["event_time"].dt.hour().to_list() == [7, 23]
    assert bad["rule"].to_list() == ["bad_event_time", "out_of_partition"]
    assert "time format '%m/%d/%Y %H:%M' in Europe/Berlin" in bad["reason"][0]


def test_event_labels_loads_a_days_feedback_and_checks_its_accounting(bare_home: Pipeline) -> None:
    """The asset stores verdicts and quarantines bad rows, with the day's figures and one
    accounting check per day; selectable without dbt's source tests."""
    from anomaly_pipeline.defs.ingest.assets import FEEDBACK_ACCOUNTING_CHECK
    from anomaly_pipeline.feedback import FEEDBACK_QUARANTINE_TABLE, FEEDBACK_TABLE, SCORES_TABLE

    scored = pl.DataFrame({"user_key": ["k1", "k2"], "event_day": [DAY, DAY]})
    warehouse.replace_partitions(bare_home.warehouse, SCORES_TABLE, scored, [DAY])
    (data_home(bare_home.root).landing_labels / f"feedback_{DAY}.csv").write_text(
        f"user_key,event_day,verdict\nk1,{DAY},confirmed\nk2,{DAY},unsure\n"
    )
    check = dg.AssetCheckKey(dg.AssetKey("event_labels"), FEEDBACK_ACCOUNTING_CHECK)
    selection = dg.AssetSelection.assets("event_labels").without_checks() | (
        dg.AssetSelection.checks(check)
    )
    for _ in range(2):  # a re-run replaces the day's rows
        result = materialize(bare_home, selection, partition_key=DAY.isoformat())
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed and evaluation.partition == DAY.isoformat()
        assert evaluation.metadata["input_rows"].value == 2
        (event,) = result.asset_materializations_for_node("event_labels")
        assert event.metadata["feedback_rows"].value == 1
        assert event.metadata["feedback_quarantined"].value == 1
        assert _counts(bare_home.warehouse, FEEDBACK_TABLE) == 1
        assert _counts(bare_home.warehouse, FEEDBACK_QUARANTINE_TABLE) == 1
