"""Sensors and the schedule against a real Dagster instance: landing-zone arrivals, the daily
schedule's partition, failure alerts posted to a local webhook, and drift-triggered retraining
(one run per drift episode, nothing inside the cooldown)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from conftest import Pipeline, failure_sensor_context, materialize, pipeline_resources

from anomaly_pipeline.alerts import WEBHOOK_ENV
from anomaly_pipeline.defs.jobs import daily_job, training_job
from anomaly_pipeline.defs.monitoring.automation import (
    COOLDOWN_ENV,
    DRIFT_CHECK_KEY,
    daily_scoring_schedule,
    drift_retraining_sensor,
    landing_zone_sensor,
    run_failure_alert_sensor,
)
from anomaly_pipeline.paths import HOME_ENV, data_home
from anomaly_pipeline.privacy import PSEUDONYM_KEY_ENV

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as local:
        yield local


# --- landing_zone_sensor --------------------------------------------------------------------


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty landing/events folder of a data directory the sensor finds via the environment."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    return data_home().ensure().landing_events


def _landing_requests(instance: dg.DagsterInstance) -> dict[str, dg.RunRequest]:
    result = landing_zone_sensor(dg.build_sensor_context(instance=instance))
    return {r.partition_key: r for r in result.run_requests}


def test_each_day_file_requests_its_partition_once(
    landing: Path, instance: dg.DagsterInstance
) -> None:
    for day in DAYS:
        (landing / f"events_{day}.parquet").write_bytes(b"day file")
    requests = _landing_requests(instance)
    assert sorted(requests) == list(DAYS)
    for day, request in requests.items():
        path = landing / f"events_{day}.parquet"
        assert request.run_key == f"{path.name}:{path.stat().st_mtime_ns}"
        assert request.tags["anomaly_pipeline/landing_file"] == path.name
    assert _landing_requests(instance) == requests, "an unchanged folder gives the same run keys"


def test_redelivered_file_gets_a_new_run_key(landing: Path, instance: dg.DagsterInstance) -> None:
    path = landing / f"events_{DAYS[0]}.parquet"
    path.write_bytes(b"first delivery")
    first = _landing_requests(instance)[DAYS[0]].run_key
    mtime = path.stat().st_mtime_ns
    os.utime(path, ns=(mtime + 5_000_000_000, mtime + 5_000_000_000))
    second = _landing_requests(instance)[DAYS[0]].run_key
    assert first != second == f"{path.name}:{mtime + 5_000_000_000}"


def test_files_without_a_known_day_are_ignored(landing: Path, instance: dg.DagsterInstance) -> None:
    (landing / "README.txt").write_text("no day here")
    (landing / "events_2024-12-31.parquet").write_bytes(b"before the first partition")
    (landing / "events_2099-01-01.parquet").write_bytes(b"a day that has not happened")
    (landing / "2026-11-04").mkdir()  # a folder named like a day is not a file
    # A delivery still being written (simulate/landing.py writes atomically through this name).
    (landing / f".events_{DAYS[0]}.parquet.4242.tmp").write_bytes(b"half a file")
    result = landing_zone_sensor(dg.build_sensor_context(instance=instance))
    assert not result.run_requests
    assert "no day file" in result.skip_reason.skip_message


def test_missing_landing_folder_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "never-created"))
    result = landing_zone_sensor(dg.build_sensor_context(instance=instance))
    assert not result.run_requests and result.skip_reason is not None


# --- daily_scoring_schedule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [
        (datetime(2026, 11, 25, 2, 0, tzinfo=UTC), "2026-11-24"),
        (datetime(2026, 3, 1, 2, 0, tzinfo=UTC), "2026-02-28"),
        # 00:30 in Berlin is still the previous UTC day: yesterday is counted in UTC.
        (datetime(2026, 11, 25, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")), "2026-11-23"),
    ],
)
def test_schedule_runs_yesterdays_utc_partition(
    instance: dg.DagsterInstance, scheduled: datetime, expected: str
) -> None:
    request = daily_scoring_schedule(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=scheduled)
    )
    assert request.partition_key == expected
    assert request.run_key == f"daily-{expected}"
    assert daily_job.partitions_def.has_partition_key(expected)


# --- run_failure_alert_sensor -------------------------------------------------------------


@pytest.fixture
def failed_run(tmp_path: Path, instance: dg.DagsterInstance) -> dg.DagsterRun:
    """A real failed run: raw_events for a day whose landing file never arrived."""
    root = data_home(tmp_path / "home").ensure().root
    pipeline = Pipeline(
        root=root, days=[], instance=instance, resources=pipeline_resources(root), simulation=None
    )
    result = materialize(
        pipeline,
        dg.AssetSelection.assets("raw_events", "quarantined_events"),
        partition_key=DAYS[0],
        raise_on_error=False,
    )
    assert not result.success
    return instance.get_run_by_id(result.run_id)


def test_failed_run_is_posted_to_the_webhook(
    failed_run: dg.DagsterRun, instance: dg.DagsterInstance, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    run_failure_alert_sensor(failure_sensor_context(instance, failed_run, url))
    assert len(received) == 1
    payload = received[0]
    assert payload["run_id"] == failed_run.run_id
    assert payload["job"] == failed_run.job_name
    assert [s["step"] for s in payload["failed_steps"]] == ["raw_events"]
    assert f"no landing file for {DAYS[0]}" in payload["failed_steps"][0]["error"]
    assert failed_run.run_id in payload["text"] and "raw_events" in payload["text"]


def test_failed_run_without_webhook_is_logged(
    failed_run: dg.DagsterRun, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    run_failure_alert_sensor(failure_sensor_context(instance, failed_run))
    logged = capsys.readouterr().err
    assert "ERROR" in logged and failed_run.run_id in logged
    assert f"no landing file for {DAYS[0]}" in logged


def test_failure_alerts_redact_the_webhook_token_and_the_pseudonym_key(
    instance: dg.DagsterInstance,
    webhook: tuple[str, list[dict]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, received = webhook
    token, key = "T0KEN-s3cr3t-abcdef123456", "pseudonym-key-s3cr3t-0123456789"
    secret_url = f"{url}/{token}?sig={token}"
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, key)

    @dg.asset
    def leaky_step() -> None:
        raise RuntimeError(f"could not reach {secret_url} (token {token}) with key {key}")

    result = dg.materialize([leaky_step], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    run_failure_alert_sensor(failure_sensor_context(instance, run, secret_url))
    posted = json.dumps(received)
    assert "could not reach [redacted]" in posted and "leaky_step" in posted
    assert token not in posted and key not in posted
    monkeypatch.setenv(WEBHOOK_ENV, secret_url)  # no resource URL: logged, still redacted
    capsys.readouterr()  # only what the sensor logs from here on
    run_failure_alert_sensor(failure_sensor_context(instance, run))
    logged = capsys.readouterr().err
    assert "could not reach [redacted]" in logged and token not in logged and key not in logged


# --- drift_retraining_sensor --------------------------------------------------------------


def _record_drift_check(instance: dg.DagsterInstance, day: str, passed: bool) -> None:
    """A drift-check evaluation in the instance's event log, as feature_drift reports it."""
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=DRIFT_CHECK_KEY.asset_key,
            check_name=DRIFT_CHECK_KEY.name,
            passed=passed,
            partition=day,
            metadata={"drifted": not passed},
        )
    )


def _drift_tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    return drift_retraining_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_drift_episode_requests_one_training_run(instance: dg.DagsterInstance) -> None:
    assert drift_retraining_sensor.job_name == training_job.name
    calm = _drift_tick(instance, None)
    assert not calm.run_requests and "no new drift check" in calm.skip_reason.skip_message

    _record_drift_check(instance, DAYS[0], passed=True)
    _record_drift_check(instance, DAYS[1], passed=False)
    first = _drift_tick(instance, calm.cursor)
    (request,) = first.run_requests
    assert request.tags["anomaly_pipeline/trigger"] == "drift"
    assert request.tags["anomaly_pipeline/drift_partition"] == DAYS[1]
    assert request.run_key.startswith("drift-check-")

    again = _drift_tick(instance, first.cursor)
    assert not again.run_requests, "the same checks must not request twice"
    _record_drift_check(instance, DAYS[2], passed=False)
    ongoing = _drift_tick(instance, again.cursor)
    assert not ongoing.run_requests and "already handled" in ongoing.skip_reason.skip_message


def test_new_episode_inside_the_cooldown_requests_nothing(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_drift_check(instance, DAYS[0], passed=False)
    first = _drift_tick(instance, None)
    assert len(first.run_requests) == 1
    _record_drift_check(instance, DAYS[1], passed=True)
    _record_drift_check(instance, DAYS[2], passed=False)
    cooling = _drift_tick(instance, first.cursor)
    assert not cooling.run_requests and "cooldown" in cooling.skip_reason.skip_message
    # Once the cooldown is over, the next episode (calm, then drift again) retrains again.
    monkeypatch.setenv(COOLDOWN_ENV, "0")
    _record_drift_check(instance, "2026-11-04", passed=True)
    _record_drift_check(instance, "2026-11-05", passed=False)
    (request,) = _drift_tick(instance, cooling.cursor).run_requests
    assert request.tags["anomaly_pipeline/drift_partition"] == "2026-11-05"


# --- the code location ---------------------------------------------------------------------


def test_sensors_and_schedule_are_in_the_code_location() -> None:
    from anomaly_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)
    sensors = {s.name for s in defs.sensors}
    assert {"drift_retraining_sensor", "landing_zone_sensor", "run_failure_alert_sensor"} <= sensors
    assert {s.name for s in defs.schedules} == {"daily_scoring_schedule"}
    assert defs.resolve_sensor_def("drift_retraining_sensor").job_name == "training_job"
    assert defs.resolve_sensor_def("landing_zone_sensor").job_name == "daily_job"
    assert defs.resolve_schedule_def("daily_scoring_schedule").job_name == "daily_job"
    training_keys = defs.resolve_job_def("training_job").asset_layer.selected_asset_keys
    assert dg.AssetKey("champion_model") in training_keys
