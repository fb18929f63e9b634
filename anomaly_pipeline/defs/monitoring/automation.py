"""Sensors and schedules: drift-triggered retraining, landing-zone arrivals, the daily run,
and failure alerts. Sensors only read Dagster's event log and file metadata (no heavy work)."""

import os
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from anomaly_pipeline.alerts import WEBHOOK_ENV
from anomaly_pipeline.defs import jobs
from anomaly_pipeline.defs.monitoring.assets import DRIFT_CHECK
from anomaly_pipeline.defs.partitions import daily_partitions
from anomaly_pipeline.defs.resources import AlertWebhookResource
from anomaly_pipeline.delivery import is_in_progress
from anomaly_pipeline.messages import redact, url_secrets
from anomaly_pipeline.paths import data_home
from anomaly_pipeline.privacy import PSEUDONYM_KEY_ENV
from anomaly_pipeline.retraining import (
    DriftObservation,
    RetrainingCursor,
    decide_retraining,
)

DRIFT_CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("feature_drift"), DRIFT_CHECK)
#: Seconds after a drift-triggered retraining during which a new drift episode is ignored.
COOLDOWN_ENV = "ANOMALY_PIPELINE_RETRAIN_COOLDOWN_S"
DEFAULT_COOLDOWN_S = 24 * 3600
SCHEDULE_HOUR_ENV = "ANOMALY_PIPELINE_SCHEDULE_HOUR"
SCHEDULE_TZ_ENV = "ANOMALY_PIPELINE_SCHEDULE_TZ"
#: How many recent drift-check evaluations the sensor reads per tick.
HISTORY_LIMIT = 200
_DAY_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")
#: Values of a check execution record's status once its evaluation completed.
_FAILED = "FAILED"
_COMPLETED = {"SUCCEEDED", _FAILED}


def drift_observations(instance: dg.DagsterInstance) -> list[DriftObservation]:
    """The newest ``HISTORY_LIMIT`` completed drift-check evaluations, newest first (event-log
    metadata only).

    Dagster exports no public name for an execution record's status, so completed records are
    picked by the status's value (planned ones, of runs still in flight, are paged past).
    """
    observations: list[DriftObservation] = []
    cursor = None
    while len(observations) < HISTORY_LIMIT:
        records = instance.event_log_storage.get_asset_check_execution_history(
            DRIFT_CHECK_KEY, limit=HISTORY_LIMIT, cursor=cursor
        )
        observations += [
            DriftObservation(
                record_id=r.id,
                timestamp=r.create_timestamp,
                drifted=r.status.value == _FAILED,
                partition=r.partition,
            )
            for r in records
            if r.status.value in _COMPLETED
        ]
        if len(records) < HISTORY_LIMIT:
            break
        cursor = records[-1].id
    return observations[:HISTORY_LIMIT]


@dg.sensor(
    job=jobs.training_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One retraining run (training_set → models → evaluation → champion gate) "
    "per drift episode of feature_drift's check, with a cooldown. Stop this "
    "sensor to pause drift-triggered retraining.",
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cooldown = float(os.environ.get(COOLDOWN_ENV, DEFAULT_COOLDOWN_S))
    decision = decide_retraining(
        drift_observations(context.instance),
        RetrainingCursor.from_json(context.cursor),
        now=time.time(),
        cooldown_s=cooldown,
    )
    requests = []
    if decision.request and decision.trigger is not None:
        requests.append(
            dg.RunRequest(
                run_key=f"drift-check-{decision.trigger.record_id}",
                tags={
                    "anomaly_pipeline/trigger": "drift",
                    "anomaly_pipeline/drift_partition": decision.trigger.partition or "",
                },
            )
        )
    return dg.SensorResult(
        run_requests=requests,
        cursor=decision.cursor.to_json(),
        skip_reason=None if requests else decision.reason,
    )


@dg.sensor(
    job=jobs.daily_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="A new or re-delivered day file in landing/events runs that day's "
    "partition once (run key = file name + modification time); deliveries "
    "in progress (hidden or .tmp/.part names) are ignored.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    landing = data_home().landing_events
    partitions = (
        set(daily_partitions.get_partition_keys(dynamic_partitions_store=context.instance))
        if landing.exists()
        else set()
    )
    requests = []
    for path in sorted(landing.glob("*")) if landing.exists() else []:
        match = _DAY_IN_NAME.search(path.name)
        # Deliveries still being written (".events_<day>.parquet.<pid>.tmp"): raw_events ignores
        # them too, so a run for one would find no complete file.
        if is_in_progress(path) or not (path.is_file() and match and match.group(1) in partitions):
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"{path.name}:{path.stat().st_mtime_ns}",
                partition_key=match.group(1),
                tags={"anomaly_pipeline/landing_file": path.name},
            )
        )
    return dg.SensorResult(
        run_requests=requests, skip_reason=None if requests else f"no day file in {landing}"
    )


def _schedule_hour() -> int:
    return int(os.environ.get(SCHEDULE_HOUR_ENV, "2"))


@dg.schedule(
    job=jobs.daily_job,
    cron_schedule=f"0 {_schedule_hour()} * * *",
    execution_timezone=os.environ.get(SCHEDULE_TZ_ENV, "UTC"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Yesterday's partition (UTC day) every day at the configured hour.",
)
def daily_scoring_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time or datetime.now(ZoneInfo("UTC"))
    yesterday = (scheduled.astimezone(ZoneInfo("UTC")) - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily-{yesterday}", partition_key=yesterday)


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts every failed run (id, job, failing steps and errors) to "
    "the alert webhook, or logs it when none is configured; "
    "secrets are redacted from what it sends.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, alert_webhook: AlertWebhookResource
) -> None:
    from anomaly_pipeline.alerts import post_webhook

    secrets = _known_secrets(alert_webhook.url)
    failures = context.get_step_failure_events()
    steps = [
        {"step": e.step_key, "error": redact(_error_chain(e.step_failure_data.error), secrets)}
        for e in failures
    ]
    run = context.dagster_run
    failed_steps = ", ".join(e.step_key for e in failures if e.step_key)
    text = f"Dagster run {run.run_id} of {run.job_name} failed" + (
        f" in {failed_steps}" if failed_steps else ""
    )
    payload = {
        "text": text,
        "run_id": run.run_id,
        "job": run.job_name,
        "failed_steps": steps,
        "message": redact(context.failure_event.message or "", secrets),
    }
    if alert_webhook.enabled:
        post_webhook(
            alert_webhook.url,
            payload,
            timeout=alert_webhook.timeout_s,
            retries=alert_webhook.retries,
        )
    else:
        context.log.error(f"{text}: {steps}")


def _known_secrets(webhook_url: str) -> list[str]:
    """What must never leave in an alert: the webhook URL's credentials (configured and from the
    environment) and the pseudonym key. Errors of failed steps may quote any of them."""
    key = os.environ.get(PSEUDONYM_KEY_ENV, "")
    return [
        *url_secrets(webhook_url),
        *url_secrets(os.environ.get(WEBHOOK_ENV, "")),
        *([key] if key else []),
    ]


def _error_chain(error: SerializableErrorInfo | None, limit: int = 1000) -> str:
    """The error's messages, root cause first.

    Dagster wraps an asset's exception in a step-execution error whose own message only names the
    op; the cause that tells on-call what broke would otherwise be lost from the alert.
    """
    messages = []
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return " <- ".join(reversed(messages))[:limit]
