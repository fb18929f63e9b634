"""Jobs: the day-level pipeline, training, and scoring, each runnable alone or as a backfill."""

import dagster as dg

from anomaly_pipeline.defs.partitions import daily_partitions

INGEST_FEATURES = dg.AssetSelection.groups("ingest", "features")
TRAINING = dg.AssetSelection.groups("training", "evaluation")
SCORING = dg.AssetSelection.groups("scoring", "monitoring")

#: Run monitoring (the daemon) cancels a run past this tag; set where a run's length is bounded.
MAX_RUNTIME_TAG = "dagster/max_runtime"

ingest_features_job = dg.define_asset_job(
    "ingest_features_job",
    selection=INGEST_FEATURES,
    partitions_def=daily_partitions,
    description="Landing files → raw_events → dbt features → behaviour_sequences for a day range.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=TRAINING,
    tags={MAX_RUNTIME_TAG: str(12 * 3600)},
    description="Training window → baselines + Lightning models (torchrun) → evaluation → "
    "champion gate → champion_model.",
)

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=SCORING,
    partitions_def=daily_partitions,
    description="Champion scores, alerts and drift statistics for a day range.",
)

daily_job = dg.define_asset_job(
    "daily_job",
    selection=INGEST_FEATURES | SCORING,
    partitions_def=daily_partitions,
    tags={MAX_RUNTIME_TAG: str(3 * 3600)},
    description="Everything a day needs, from its landing file to its alerts "
    "(the schedule's target).",
)
