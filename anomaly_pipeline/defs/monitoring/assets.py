"""feature_drift: each day against the champion's training reference, with a drift check."""

import dagster as dg
import polars as pl
from pydantic import Field

from anomaly_pipeline.defs.partitions import daily_partitions, partition_days, single_run_backfill
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource

DRIFT_TABLE = "monitoring.feature_drift"
DRIFT_CHECK = "drift_within_thresholds"


class DriftConfig(dg.Config):
    psi: float = Field(default=0.25, gt=0, description="PSI at or above which a feature drifted.")
    ks: float = Field(default=0.2, gt=0, description="KS statistic at or above which it drifted.")
    unseen_share: float = Field(default=0.05, gt=0, description="Share of unseen categories.")
    min_drifted_features: int = Field(default=3, ge=1, description="Drifted features that make "
                                      "the day drifted (a drifted score distribution always does).")


@dg.multi_asset(
    specs=[dg.AssetSpec("feature_drift", group_name="monitoring",
                        deps=["user_day_features", "stg_events", "daily_anomaly_scores",
                              "champion_model"],
                        description="PSI and KS per feature and for the score distribution, and "
                                    "the unseen-category share, of each day vs the champion's "
                                    "training reference.", kinds={"duckdb", "scipy"})],
    # Partitioned like the asset, so a day's evaluation is recorded against that day (the
    # sensor tags its retraining run with it); a range run records one evaluation for the range.
    check_specs=[dg.AssetCheckSpec(DRIFT_CHECK, asset="feature_drift",
                                   partitions_def=daily_partitions,
                                   description="Fails when the day drifted beyond the thresholds "
                                               "(read by drift_retraining_sensor).")],
    partitions_def=daily_partitions, backfill_policy=single_run_backfill, pool=WAREHOUSE_POOL,
)
def feature_drift(context: dg.AssetExecutionContext, config: DriftConfig,
                  warehouse: WarehouseResource):
    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.drift import DriftThresholds, assess, feature_drift as drift_table
    from anomaly_pipeline.drift import plot_drift, score_drift, sort_by_drift, unseen_categories
    from anomaly_pipeline.evaluation import png_to_markdown
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
    from anomaly_pipeline.model_registry import champion_bundle_dir
    from anomaly_pipeline.scoring import SCORES_TABLE
    from anomaly_pipeline.training_set import CATEGORICAL_COLUMNS, category_values

    home = warehouse.data_home
    champion = champion_bundle_dir(home.mlflow_tracking_uri, home.artifacts / "champion_cache")
    if champion is None:
        raise dg.Failure("no champion model: drift is measured against the champion's training "
                         "reference; materialise training_job first")
    reference, categories = ScoringBundle.reference(champion[1])
    thresholds = DriftThresholds(psi=config.psi, ks=config.ks, unseen_share=config.unseen_share,
                                 min_drifted_features=config.min_drifted_features)
    days = partition_days(context)
    tables, verdicts = [], {}
    for day in days:
        current = warehouse.read_days("features.user_day_features", [day], columns=FEATURE_COLUMNS)
        if current.is_empty():
            raise dg.Failure(f"no features for {day}: materialise user_day_features first")
        scores = warehouse.read_days(SCORES_TABLE, [day], columns=["raw_score"])
        table = pl.concat([drift_table(reference, current, FEATURE_COLUMNS),
                           unseen_categories(categories, {
                               c: category_values(warehouse.path, [day], c)
                               for c in CATEGORICAL_COLUMNS})])
        if not scores.is_empty():
            table = pl.concat([score_drift(reference["raw_score"].to_numpy(),
                                           scores["raw_score"].to_numpy()), table])
        table = sort_by_drift(table)
        verdicts[day] = assess(table, thresholds)
        tables.append(table.with_columns(event_day=pl.lit(day), drifted=pl.lit(verdicts[day].drifted),
                                         model_version=pl.lit(str(champion[0].version))))
    all_days = pl.concat(tables)
    warehouse.replace_partitions(DRIFT_TABLE, all_days, days)
    last = tables[-1].drop("event_day", "drifted", "model_version")
    plot = plot_drift(reference, current, last)  # the loop's last day
    drifted_days = [str(d) for d, v in verdicts.items() if v.drifted]
    yield dg.MaterializeResult(asset_key="feature_drift", metadata={
        "dagster/row_count": all_days.height,
        "reference_model_version": str(champion[0].version),
        "most_drifted": dg.MetadataValue.md(f"```\n{last.head(10)}\n```"),
        "plot": dg.MetadataValue.md(png_to_markdown(plot, f"drift {days[-1]}"))})
    yield dg.AssetCheckResult(
        asset_key="feature_drift", check_name=DRIFT_CHECK, passed=not drifted_days,
        description="; ".join(f"{d}: {v.reason}" for d, v in verdicts.items())[:2000],
        metadata={"drifted": bool(drifted_days),
                  "drifted_days": dg.MetadataValue.json(drifted_days),
                  "drifted_features": dg.MetadataValue.json(
                      sorted({f for v in verdicts.values() for f in v.drifted_features}))})

