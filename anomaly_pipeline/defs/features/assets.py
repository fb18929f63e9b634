"""Behaviour sequences and the pandera contract on the feature mart."""

import dagster as dg
import polars as pl
from pydantic import Field

from anomaly_pipeline.defs.partitions import (
    add_metadata_per_day,
    check_results_per_day,
    daily_partitions,
    partition_days,
    single_run_backfill,
)
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource

FEATURES_TABLE = "features.user_day_features"
STG_EVENTS_TABLE = "features.stg_events"
SEQUENCES_TABLE = "features.behaviour_sequences"


class SequenceConfig(dg.Config):
    max_len: int = Field(
        default=64,
        ge=2,
        le=4096,
        description="Events kept per user-day (most recent); shorter days are padded.",
    )


@dg.asset(
    group_name="features",
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
    deps=["stg_events"],
    kinds={"duckdb", "polars"},
    description="Per (user, day): ordered event-type tokens, log time gaps and category-change "
    "flags, padded/truncated to max_len, validated by a pandera contract.",
)
def behaviour_sequences(
    context: dg.AssetExecutionContext, config: SequenceConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    from anomaly_pipeline.sequences import write_sequences

    days = partition_days(context)
    counts = write_sequences(
        warehouse.path,
        days,
        events_table=STG_EVENTS_TABLE,
        sequences_table=SEQUENCES_TABLE,
        max_len=config.max_len,
    )
    add_metadata_per_day(
        context,
        {
            day: {"dagster/row_count": rows, "truncated_user_days": truncated}
            for day, (rows, truncated) in counts.items()
        },
    )
    return dg.MaterializeResult(metadata={"max_len": config.max_len})


@dg.asset_check(
    asset="user_day_features",
    blocking=True,
    partitions_def=daily_partitions,
    pool=WAREHOUSE_POOL,
    description="pandera contract of the feature mart (keys, non-null features, "
    "ranges); blocks every downstream asset when it fails.",
)
def user_day_features_contract(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
):
    """Each day of the step validated and recorded on its own partition."""
    import pandera.errors

    from anomaly_pipeline.feature_contract import validate_features

    days = partition_days(context)
    frame = warehouse.read_days(FEATURES_TABLE, days)
    results = {}
    for day in days:
        day_frame = frame.filter(pl.col("event_day") == day) if frame.height else frame
        if day_frame.is_empty():
            results[day] = dg.AssetCheckResult(
                passed=False, description=f"no feature rows for {day}"
            )
            continue
        try:
            validate_features(day_frame)
        except pandera.errors.SchemaErrors as err:
            results[day] = dg.AssetCheckResult(
                passed=False,
                description=str(err)[:2000],
                metadata={
                    "failure_cases": dg.MetadataValue.md(f"```\n{err.failure_cases.head(20)}\n```")
                },
            )
            continue
        results[day] = dg.AssetCheckResult(passed=True, metadata={"rows": day_frame.height})
    yield from check_results_per_day(context, context.check_specs[0].key, results)
