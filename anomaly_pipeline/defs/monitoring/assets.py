"""feature_drift: each day against the champion's training reference, with a drift check."""

from datetime import date
from typing import Any

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

DRIFT_TABLE = "monitoring.feature_drift"
DRIFT_CHECK = "drift_within_thresholds"


class DriftConfig(dg.Config):
    psi: float = Field(default=0.25, gt=0, description="PSI at or above which a feature drifted.")
    ks: float = Field(default=0.2, gt=0, description="KS statistic at or above which it drifted.")
    unseen_share: float = Field(default=0.05, gt=0, description="Share of unseen categories.")
    min_drifted_features: int = Field(
        default=3,
        ge=1,
        description="Drifted features that make "
        "the day drifted (a drifted score distribution always does).",
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "feature_drift",
            group_name="monitoring",
            deps=["user_day_features", "stg_events", "daily_anomaly_scores", "champion_model"],
            description="PSI and KS per feature and for the score distribution, and "
            "the unseen-category share, of each day vs the champion's "
            "training reference.",
            kinds={"duckdb", "scipy"},
        )
    ],
    # Partitioned like the asset: every day of a run records its own evaluation (the sensor tags
    # its retraining run with the day).
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="feature_drift",
            partitions_def=daily_partitions,
            description="Fails when the day drifted beyond the thresholds "
            "(read by drift_retraining_sensor).",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def feature_drift(
    context: dg.AssetExecutionContext, config: DriftConfig, warehouse: WarehouseResource
):
    """Each day's drift table, metadata and check verdict, recorded on that day's partition.

    History features are left out of the verdict on warm-up days (the data's first
    HISTORY_WINDOW_DAYS days) and compared only with full-window reference rows otherwise, so a
    fresh history does not look drifted (and start a retraining) merely for being fresh.
    """
    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.drift import (
        DriftThresholds,
        assess,
        day_feature_drift,
        flag_drifted,
        plot_drift,
        score_drift,
        sort_by_drift,
        unseen_categories,
    )
    from anomaly_pipeline.evaluation import png_to_markdown
    from anomaly_pipeline.feature_contract import (
        FEATURE_COLUMNS,
        HISTORY_FEATURES,
        full_history_from,
    )
    from anomaly_pipeline.scoring import SCORES_TABLE
    from anomaly_pipeline.training_set import CATEGORICAL_COLUMNS, category_counts, feature_days

    champion = warehouse.data_home.champion()
    if champion is None:
        raise dg.Failure(
            "no champion model: drift is measured against the champion's training "
            "reference; materialise training_job first"
        )
    reference, categories = ScoringBundle.reference(champion.bundle_dir)
    thresholds = DriftThresholds(
        psi=config.psi,
        ks=config.ks,
        unseen_share=config.unseen_share,
        min_drifted_features=config.min_drifted_features,
    )
    days = partition_days(context)
    full_history = full_history_from(feature_days(warehouse.path)[0])
    # Bundles from before the reference kept its days have no event_day: all rows count as full.
    history_reference = (
        reference.filter(pl.col("event_day") >= full_history)
        if "event_day" in reference.columns
        else reference
    )
    tables, verdicts = [], {}
    summaries: dict[date, dict[str, Any]] = {}
    for day in days:
        current = warehouse.read_days("features.user_day_features", [day], columns=FEATURE_COLUMNS)
        if current.is_empty():
            raise dg.Failure(f"no features for {day}: materialise user_day_features first")
        warm_up = day < full_history
        table, left_out = day_feature_drift(
            reference,
            current,
            FEATURE_COLUMNS,
            HISTORY_FEATURES,
            None if warm_up else history_reference,
        )
        table = pl.concat(
            [
                table,
                unseen_categories(
                    categories,
                    {c: category_counts(warehouse.path, [day], c) for c in CATEGORICAL_COLUMNS},
                ),
            ]
        )
        scores = warehouse.read_days(SCORES_TABLE, [day], columns=["raw_score"])
        if not scores.is_empty():
            table = pl.concat(
                [
                    score_drift(reference["raw_score"].to_numpy(), scores["raw_score"].to_numpy()),
                    table,
                ]
            )
        table = flag_drifted(sort_by_drift(table), thresholds, left_out)
        verdicts[day] = verdict = assess(table, thresholds, left_out)
        summaries[day] = {
            "dagster/row_count": table.height,
            "warm_up": warm_up,
            "drifted_features": dg.MetadataValue.json(verdict.drifted_features),
            "most_drifted": dg.MetadataValue.md(f"```\n{table.head(10)}\n```"),
        }
        tables.append(
            table.with_columns(
                event_day=pl.lit(day), model_version=pl.lit(str(champion.ref.version))
            )
        )
    warehouse.replace_partitions(DRIFT_TABLE, pl.concat(tables), days)
    # One plot, of the range's last day (the loop's last `current`), on that day only.
    plot = plot_drift(reference, current, tables[-1])
    summaries[days[-1]]["plot"] = dg.MetadataValue.md(png_to_markdown(plot, f"drift {days[-1]}"))
    add_metadata_per_day(context, summaries)
    yield dg.MaterializeResult(
        asset_key="feature_drift", metadata={"reference_model_version": str(champion.ref.version)}
    )
    yield from check_results_per_day(
        context,
        dg.AssetCheckKey(dg.AssetKey("feature_drift"), DRIFT_CHECK),
        {
            day: dg.AssetCheckResult(
                passed=not v.drifted,
                description=v.reason[:2000],
                metadata={
                    "drifted": v.drifted,
                    "warm_up": summaries[day]["warm_up"],
                    "drifted_features": dg.MetadataValue.json(v.drifted_features),
                },
            )
            for day, v in verdicts.items()
        },
    )
