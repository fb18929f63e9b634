"""The code location: every asset, check, job, sensor, schedule and resource in one Definitions."""

import os
import warnings

import dagster as dg

# Single-run backfill policies and partitioned asset checks are beta/preview features we rely on
# on purpose; filtered before the stage modules below define them.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from anomaly_pipeline.alerts import WEBHOOK_ENV
from anomaly_pipeline.defs import jobs
from anomaly_pipeline.defs.evaluation import assets as evaluation
from anomaly_pipeline.defs.features import assets as features
from anomaly_pipeline.defs.features import dbt as dbt_features
from anomaly_pipeline.defs.ingest import assets as ingest
from anomaly_pipeline.defs.monitoring import assets as monitoring
from anomaly_pipeline.defs.monitoring import automation
from anomaly_pipeline.defs.resources import AlertWebhookResource, WarehouseResource, mlflow_tracking
from anomaly_pipeline.defs.scoring import assets as scoring
from anomaly_pipeline.defs.training import assets as training
from anomaly_pipeline.paths import data_home

STAGES = (ingest, dbt_features, features, training, evaluation, scoring, monitoring)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(STAGES),
    asset_checks=dg.load_asset_checks_from_modules(STAGES),
    jobs=[jobs.ingest_features_job, jobs.training_job, jobs.scoring_job, jobs.daily_job],
    sensors=automation.SENSORS,
    schedules=automation.SCHEDULES,
    resources={
        "warehouse": WarehouseResource(),
        "dbt": dbt_features.dbt_resource(),
        "mlflow": mlflow_tracking,
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "alert_webhook": AlertWebhookResource(url=os.environ.get(WEBHOOK_ENV, "")),
        "io_manager": dg.FilesystemIOManager(base_dir=str(data_home().root / "dagster_storage")),
    },
)
