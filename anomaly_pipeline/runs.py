"""Running the code location's jobs on the data home's persistent Dagster instance.

Shared by `make demo` and `anomaly-pipeline onboard`: both run the same jobs a data engineer
launches from the UI, on the instance under ``$DAGSTER_HOME`` (inside the data directory), so
`make dev` shows every run afterwards with its full event log.
"""

from __future__ import annotations

import contextlib
import time
from datetime import date
from typing import Any

from anomaly_pipeline.paths import data_home


def range_tags(days: list[date]) -> dict[str, str]:
    """Run tags that make one run materialise a whole partition range."""
    return {
        "dagster/asset_partition_range_start": days[0].isoformat(),
        "dagster/asset_partition_range_end": days[-1].isoformat(),
    }


def run_job(
    name: str,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
    log_name: str = "demo.log",
    console_level: str = "WARNING",
    raise_on_failure: bool = True,
) -> Any:
    """Execute a job of the code location on the persistent instance; return its result.

    The terminal gets log lines from ``console_level`` up; the full event log stays in the
    instance (`make dev` → Runs). The dbt step echoes dbt's own log lines to stdout (for compute
    logs); they go to ``log_name`` in the data directory. A failed run raises ``SystemExit``
    naming the run, unless ``raise_on_failure`` is false (the caller then reads
    ``result.success``).
    """
    import dagster as dg

    from anomaly_pipeline.definitions import defs
    from anomaly_pipeline.defs.recovery import process_tags, recover_dead_runs

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        # execute_in_process bypasses the code location's executor: recover and tag here.
        for dead in recover_dead_runs(instance):
            print(f"  recovered dead run {dead.run_id[:8]} ({dead.job_name}): pool slots freed")
        with (
            open(data_home().root / log_name, "a", encoding="utf-8") as log,
            contextlib.redirect_stdout(log),
        ):
            result = defs.resolve_job_def(name).execute_in_process(
                instance=instance,
                tags={**process_tags(), **(tags or {})},
                raise_on_error=False,
                run_config={
                    "loggers": {"console": {"config": {"log_level": console_level}}},
                    **(run_config or {}),
                },
            )
    print(
        f"  {name}: {'ok' if result.success else 'FAILED'} "
        f"({time.perf_counter() - started:.0f} s, run {result.run_id[:8]})"
    )
    if not result.success and raise_on_failure:
        raise SystemExit(f"{name} failed; open `make dev` → Runs → {result.run_id} for the logs")
    return result
