"""Benchmark of one evaluation of each sensor against a month of history.

Sensors run in the daemon every 30–60 s and must stay cheap: they only read Dagster's event log
and file metadata. The budget is ``BUDGET_S`` (2 s) per evaluation. The instance gets a 30-day
history: 30 drift-check evaluations of ``feature_drift`` (one per day, every fifth one failing),
30 day files in ``landing/events`` and one real failed run (``raw_events`` for a day whose file
never arrived). Each sensor is then evaluated ``--repeat`` times:

* ``drift_retraining_sensor`` from an empty cursor (the worst case: the whole history is new);
* ``landing_zone_sensor`` over the 30 files;
* ``run_failure_alert_sensor`` on the failed run's RUN_FAILURE event (no webhook: it logs).

The last line printed is::

    bench-sensors drift_s=<s> landing_s=<s> failure_s=<s> budget_s=2 worst_vs_budget=<x>

with the median seconds per evaluation and the slowest median as a fraction of the budget.

Run: ``python benchmarks/bench_sensors.py [--days 30] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

# Single-run backfill policies and partitioned checks are Dagster beta/preview features the code
# location uses on purpose; their warnings at import would bury the result line.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from anomaly_pipeline.defs.ingest.assets import raw_events  # noqa: E402
from anomaly_pipeline.defs.monitoring.automation import (  # noqa: E402
    DRIFT_CHECK_KEY,
    drift_retraining_sensor,
    landing_zone_sensor,
    run_failure_alert_sensor,
)
from anomaly_pipeline.defs.resources import AlertWebhookResource, WarehouseResource  # noqa: E402
from anomaly_pipeline.paths import HOME_ENV, data_home  # noqa: E402

BUDGET_S = 2.0
FIRST_DAY = date(2026, 10, 1)


def build_history(root: Path, instance: dg.DagsterInstance, days: int) -> dg.DagsterRun:
    """Fill the data directory and the instance with ``days`` of history; return a failed run."""
    home = data_home(root).ensure()
    for i in range(days):
        day = (FIRST_DAY + timedelta(days=i)).isoformat()
        (home.landing_events / f"events_{day}.parquet").write_bytes(b"x" * 1024)
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=DRIFT_CHECK_KEY.asset_key,
                check_name=DRIFT_CHECK_KEY.name,
                passed=i % 5 != 4,
                partition=day,
                description=f"{day}: drift statistics",
                metadata={
                    "drifted": i % 5 == 4,
                    "warm_up": False,
                    "drifted_features": dg.MetadataValue.json([]),
                },
            )
        )
    missing_day = (FIRST_DAY + timedelta(days=days)).isoformat()
    with contextlib.redirect_stderr(io.StringIO()):  # the expected failure's traceback
        result = dg.materialize(
            [raw_events],
            partition_key=missing_day,
            instance=instance,
            resources={"warehouse": WarehouseResource(home=str(root))},
            raise_on_error=False,
        )
    if result.success:
        raise RuntimeError(f"raw_events for {missing_day} (no landing file) should have failed")
    return instance.get_run_by_id(result.run_id)


def median_seconds(evaluate: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        evaluate()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30, help="days of history")
    parser.add_argument("--repeat", type=int, default=5, help="evaluations per sensor")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sensors-") as scratch:
        root = Path(scratch) / "home"
        os.environ[HOME_ENV] = str(root)  # landing_zone_sensor finds the data directory here
        data_home(root).ensure()
        with dg.DagsterInstance.local_temp(str(data_home(root).dagster_home)) as instance:
            failed = build_history(root, instance, args.days)
            (failure,) = [
                r.event_log_entry.dagster_event
                for r in instance.get_records_for_run(
                    failed.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
                ).records
            ]

            def drift() -> None:
                result = drift_retraining_sensor(dg.build_sensor_context(instance=instance))
                assert len(result.run_requests) == 1, result

            def landing() -> None:
                result = landing_zone_sensor(dg.build_sensor_context(instance=instance))
                assert len(result.run_requests) == args.days, result

            def failure_alert() -> None:
                context = dg.build_run_status_sensor_context(
                    sensor_name=run_failure_alert_sensor.name,
                    dagster_event=failure,
                    dagster_instance=instance,
                    dagster_run=failed,
                    resources={"alert_webhook": AlertWebhookResource()},
                ).for_run_failure()
                with contextlib.redirect_stderr(io.StringIO()):  # the alert's log line
                    run_failure_alert_sensor(context)

            drift_s = median_seconds(drift, args.repeat)
            landing_s = median_seconds(landing, args.repeat)
            failure_s = median_seconds(failure_alert, args.repeat)
    worst = max(drift_s, landing_s, failure_s)
    print(
        f"bench-sensors drift_s={drift_s:.4f} landing_s={landing_s:.4f} "
        f"failure_s={failure_s:.4f} budget_s={BUDGET_S:g} worst_vs_budget={worst / BUDGET_S:.4f}"
    )


if __name__ == "__main__":
    main()
