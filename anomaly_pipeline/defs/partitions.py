"""The daily partitioning shared by every day-level asset, and helpers to read a run's days."""

import os
from datetime import date, timedelta

import dagster as dg

#: First partition; override for older data (e.g. the 2017 Taobao sample) with this variable.
START_DATE_ENV = "ANOMALY_PIPELINE_START_DATE"
DEFAULT_START_DATE = "2025-01-01"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=os.environ.get(START_DATE_ENV, DEFAULT_START_DATE), timezone="UTC",
)

#: Backfills of day-level assets run as one run over the whole range (one dbt invocation, one
#: DuckDB writer) instead of one run per day.
single_run_backfill = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The UTC days of the partition key range this step materialises (one or many)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]
