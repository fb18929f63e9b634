"""The daily partitioning shared by every day-level asset, and helpers to read a run's days."""

import os
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import dagster as dg

from anomaly_pipeline.paths import data_home
from anomaly_pipeline.source_settings import read_source_settings

#: Overrides the first partition (otherwise the first day onboarding recorded in the data home).
START_DATE_ENV = "ANOMALY_PIPELINE_START_DATE"
DEFAULT_START_DATE = "2025-01-01"


def first_partition_day() -> str:
    """``$ANOMALY_PIPELINE_START_DATE``, else the first day of onboarded data (``source.json`` in
    the data home, so a 2017 history gets its partitions without any variable), else the default.
    """
    recorded = read_source_settings(data_home()).start_date
    fallback = recorded.isoformat() if recorded is not None else DEFAULT_START_DATE
    return os.environ.get(START_DATE_ENV) or fallback


daily_partitions = dg.DailyPartitionsDefinition(start_date=first_partition_day(), timezone="UTC")

#: Backfills of day-level assets run as one run over the whole range (one dbt invocation, one
#: DuckDB writer) instead of one run per day.
single_run_backfill = dg.BackfillPolicy.single_run()


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The UTC days of the partition key range this step materialises (one or many)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]


def add_metadata_per_day(
    context: dg.AssetExecutionContext,
    per_day: Mapping[date, Mapping[str, Any]],
    asset_key: dg.AssetKey | str | None = None,
) -> None:
    """Attach each day's own figures to that day's materialization.

    A range step records one materialization per partition, each a copy of the step's
    MaterializeResult metadata; figures of the whole range there would show on every day. Metadata
    added for a partition key goes to that partition's event only (and wins over the copy).
    """
    for day, metadata in per_day.items():
        context.add_asset_metadata(
            dict(metadata), asset_key=asset_key, partition_key=day.isoformat()
        )


def check_results_per_day(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    check_key: dg.AssetCheckKey,
    results: Mapping[date, dg.AssetCheckResult],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """One evaluation per partition day of a partitioned check.

    Dagster plans one evaluation per partition of a range step but records an AssetCheckResult of
    that step as a single unpartitioned evaluation, so every planned day stayed "skipped". An
    AssetCheckEvaluation names its partition: each day gets its own verdict. It names no target
    materialization (Dagster exports no public type for one): Dagster then counts the verdict as
    current for the materialization of the same run, and for an earlier one by time. (The
    check's step output, which an AssetCheckResult would have produced, is yielded here so
    downstream steps can depend on it.)
    """
    ops = (
        context.op_execution_context
        if isinstance(context, dg.AssetCheckExecutionContext)
        else context
    )
    blocking = ops.assets_def.get_spec_for_check_key(check_key).blocking
    yield dg.Output(None, output_name=ops.assets_def.get_output_name_for_asset_check_key(check_key))
    for day, result in results.items():
        yield dg.AssetCheckEvaluation(
            asset_key=check_key.asset_key,
            check_name=check_key.name,
            passed=result.passed,
            metadata=result.metadata,
            severity=result.severity,
            description=result.description,
            blocking=blocking,
            partition=day.isoformat(),
        )
