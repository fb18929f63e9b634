"""daily_anomaly_scores and anomaly_alerts: day partitions, rewritten per partition on rerun."""

from datetime import timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from anomaly_pipeline.paths import repo_path

from anomaly_pipeline.defs.partitions import daily_partitions, partition_days, single_run_backfill
from anomaly_pipeline.defs.resources import (
    WAREHOUSE_POOL,
    AlertWebhookResource,
    WarehouseResource,
)
ALERTS_TABLE = "scoring.anomaly_alerts"


class ScoringConfig(dg.Config):
    policy_file: str = Field(default="resources/policy.yaml",
                             description="Rules file (relative to the project root or absolute): score "
                             "bands → block/review/allow + hard rules.")


@dg.asset(
    group_name="scoring", partitions_def=daily_partitions, backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL, deps=["user_day_features", "behaviour_sequences", "champion_model"],
    kinds={"duckdb", "mlflow"},
    description="Per (user, day): score 0–1000, flag, top-3 reasons, outcome, champion version.",
)
def daily_anomaly_scores(context: dg.AssetExecutionContext, config: ScoringConfig,
                         warehouse: WarehouseResource) -> dg.MaterializeResult:
    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
    from anomaly_pipeline.model_registry import REGISTERED_MODEL, champion_bundle_dir
    from anomaly_pipeline.policy import load_policy
    from anomaly_pipeline.scoring import SCORES_TABLE, ModelIdentity, score_user_days
    from anomaly_pipeline.training_set import load_user_days

    home = warehouse.data_home
    champion = champion_bundle_dir(home.mlflow_tracking_uri, home.artifacts / "champion_cache")
    if champion is None:
        raise dg.Failure("no champion model yet: materialise training_job (training_set → "
                         "champion_model) before scoring")
    ref, bundle_dir = champion
    bundle = ScoringBundle.load(bundle_dir)
    policy = load_policy(repo_path(config.policy_file), feature_names=FEATURE_COLUMNS)
    days = partition_days(context)
    frame = load_user_days(warehouse.path, days)
    scores = score_user_days(bundle, frame, policy,
                             ModelIdentity(REGISTERED_MODEL, str(ref.version), ref.kind))
    warehouse.replace_partitions(SCORES_TABLE, scores, days)
    outcomes = dict(scores.group_by("outcome").len().iter_rows())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": scores.height, "model_version": str(ref.version),
        "model_kind": ref.kind, "flagged": int(scores["flagged"].sum()),
        "outcomes": dg.MetadataValue.json(outcomes),
        "top_users": dg.MetadataValue.md(_top_table(scores))})


def _top_table(scores: pl.DataFrame, n: int = 10) -> str:
    rows = scores.sort("score", descending=True).head(n)
    lines = ["| user_key | day | score | outcome | reasons |", "|---|---|---|---|---|"]
    lines += [f"| {r['user_key'][:12]}… | {r['event_day']} | {r['score']:.0f} | {r['outcome']} | "
              f"{'; '.join(r['reasons'])} |" for r in rows.iter_rows(named=True)]
    return "\n".join(lines)


class AlertsConfig(dg.Config):
    reopen_after_days: int = Field(default=7, ge=1, description="An open alert suppresses new "
                                   "alerts for the same user for this many days.")


@dg.asset(
    group_name="scoring", partitions_def=daily_partitions, backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL, deps=["daily_anomaly_scores"], kinds={"duckdb"},
    description="The day's block/review users not already under an open alert; posted as JSON "
                "to the alert webhook when one is configured.",
)
def anomaly_alerts(context: dg.AssetExecutionContext, config: AlertsConfig,
                   warehouse: WarehouseResource,
                   alert_webhook: AlertWebhookResource) -> dg.MaterializeResult:
    from anomaly_pipeline.alerts import alert_payload, empty_alerts, new_alerts, post_webhook
    from anomaly_pipeline.scoring import SCORES_TABLE

    days = partition_days(context)
    history_days = [days[0] - timedelta(days=i) for i in range(config.reopen_after_days, 0, -1)]
    known = warehouse.read_days(ALERTS_TABLE, history_days)
    known = known if not known.is_empty() else empty_alerts()
    scores = warehouse.read_days(SCORES_TABLE, days,
                                 columns=["user_key", "event_day", "score", "outcome", "reasons"])
    raised = []
    for day in days:  # in order: a day's alerts suppress the next day's duplicates
        today = scores.filter(pl.col("event_day") == day) if not scores.is_empty() else scores
        day_alerts = (new_alerts(today, known, config.reopen_after_days)
                      if not today.is_empty() else empty_alerts())
        raised.append(day_alerts)
        known = pl.concat([known, day_alerts])
    alerts = pl.concat(raised)
    warehouse.replace_partitions(ALERTS_TABLE, alerts, days)
    posted = None
    if alert_webhook.enabled and alerts.height:
        posted = post_webhook(alert_webhook.url, alert_payload(alerts),
                              timeout=alert_webhook.timeout_s, retries=alert_webhook.retries)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": alerts.height,
        "block": alerts.filter(pl.col("outcome") == "block").height,
        "review": alerts.filter(pl.col("outcome") == "review").height,
        "webhook_status": posted if posted is not None else "not posted"})
