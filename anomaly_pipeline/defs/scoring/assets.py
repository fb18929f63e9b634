"""daily_anomaly_scores and anomaly_alerts: day partitions, rewritten per partition on rerun."""

from datetime import timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from anomaly_pipeline.alert_guard import GUARD_TABLE, GuardLimits
from anomaly_pipeline.defs.partitions import (
    add_metadata_per_day,
    check_results_per_day,
    daily_partitions,
    partition_days,
    single_run_backfill,
)
from anomaly_pipeline.defs.resources import (
    WAREHOUSE_POOL,
    AlertWebhookResource,
    WarehouseResource,
)
from anomaly_pipeline.paths import config_file

ALERTS_TABLE = "scoring.anomaly_alerts"
GUARD_CHECK = "alert_guard"


class ScoringConfig(dg.Config):
    policy_file: str = Field(
        default="resources/policy.yaml",
        description="Rules file (relative to the project root or absolute, "
        "inside resources/ or $ANOMALY_PIPELINE_CONFIG_DIR): score "
        "bands → block/review/allow + hard rules.",
    )
    max_flag_multiple: float = Field(
        default=GuardLimits.max_flag_multiple,
        ge=1,
        description="Alert guard: a day whose "
        "flagged share exceeds this multiple of the expected share "
        "(1 − the threshold's percentile) gets no alerts.",
    )
    max_score_psi: float = Field(
        default=GuardLimits.max_score_psi,
        gt=0,
        description="Alert guard: a day whose score "
        "distribution PSI against the champion's training reference "
        "exceeds this gets no alerts.",
    )
    guard_min_user_days: int = Field(
        default=GuardLimits.min_user_days,
        ge=1,
        description="Alert guard: days with fewer user-days are not judged on their flagged share.",
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "daily_anomaly_scores",
            group_name="scoring",
            deps=["user_day_features", "behaviour_sequences", "champion_model"],
            kinds={"duckdb", "mlflow"},
            description="Per (user, day): score 0–1000, flag, top-3 reasons, outcome, "
            "champion version; and the alert guard's verdict per day.",
        )
    ],
    check_specs=[
        dg.AssetCheckSpec(
            GUARD_CHECK,
            asset="daily_anomaly_scores",
            partitions_def=daily_partitions,
            description="Fails for a day whose flagged share or score "
            "distribution says the champion does not know "
            "this data; anomaly_alerts posts nothing for it.",
        )
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def daily_anomaly_scores(
    context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: WarehouseResource
):
    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
    from anomaly_pipeline.model_registry import REGISTERED_MODEL
    from anomaly_pipeline.policy import load_policy
    from anomaly_pipeline.scoring import GuardInput, ModelIdentity, write_scores

    champion = warehouse.data_home.champion()
    if champion is None:
        raise dg.Failure(
            "no champion model yet: materialise training_job (training_set → "
            "champion_model) before scoring"
        )
    ref, bundle_dir = champion
    bundle = ScoringBundle.load(bundle_dir)
    policy = load_policy(
        config_file(config.policy_file, setting="policy_file"), feature_names=FEATURE_COLUMNS
    )
    days = partition_days(context)
    guard = GuardInput(
        reference=ScoringBundle.reference(bundle_dir)[0]["raw_score"].to_numpy(),
        limits=GuardLimits(
            max_flag_multiple=config.max_flag_multiple,
            max_score_psi=config.max_score_psi,
            min_user_days=config.guard_min_user_days,
        ),
        threshold_percentile=bundle.detector.threshold_percentile,
    )
    model = ModelIdentity(REGISTERED_MODEL, str(ref.version), ref.kind)
    tally, verdicts = write_scores(warehouse.path, days, bundle, policy, model, guard)
    add_metadata_per_day(
        context,
        {
            day: {
                **_day_summary(tally.rows(day), tally.top(day)),
                "alerts_withheld": not v.passed,
            }
            for day, v in verdicts.items()
        },
    )
    yield dg.MaterializeResult(
        asset_key="daily_anomaly_scores",
        metadata={"model_version": str(ref.version), "model_kind": ref.kind},
    )
    yield from check_results_per_day(
        context,
        dg.AssetCheckKey(dg.AssetKey("daily_anomaly_scores"), GUARD_CHECK),
        {
            day: dg.AssetCheckResult(
                passed=v.passed,
                description=v.reason[:2000],
                metadata={
                    "alerts_withheld": not v.passed,
                    "user_days": v.user_days,
                    "flagged_share": round(v.flagged_share, 4),
                    "expected_share": v.expected_share,
                    "score_psi": round(v.score_psi, 3),
                },
            )
            for day, v in verdicts.items()
        },
    )


def _day_summary(rows: pl.DataFrame, top: pl.DataFrame) -> dict[str, object]:
    """One day's figures: rows, flagged user-days, outcomes and its own top users."""
    return {
        "dagster/row_count": rows.height,
        "flagged": int(rows["flagged"].sum()),
        "outcomes": dg.MetadataValue.json(dict(rows.group_by("outcome").len().iter_rows())),
        "top_users": dg.MetadataValue.md(_top_table(top)),
    }


def _top_table(top: pl.DataFrame) -> str:
    lines = ["| user_key | day | score | outcome | reasons |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['user_key'][:12]}… | {r['event_day']} | {r['score']:.0f} | {r['outcome']} | "
        f"{'; '.join(r['reasons'])} |"
        for r in top.iter_rows(named=True)
    ]
    return "\n".join(lines)


class AlertsConfig(dg.Config):
    reopen_after_days: int = Field(
        default=7,
        ge=1,
        description="An open alert suppresses new alerts for the same user for this many days.",
    )
    override_guard: bool = Field(
        default=False,
        description="Post alerts even for days the alert guard withheld (this run only).",
    )


@dg.asset(
    group_name="scoring",
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
    deps=["daily_anomaly_scores"],
    kinds={"duckdb"},
    description="The day's block/review users not already under an open alert; posted as JSON "
    "to the alert webhook when one is configured. None for a day the alert guard "
    "withheld, unless overridden.",
)
def anomaly_alerts(
    context: dg.AssetExecutionContext,
    config: AlertsConfig,
    warehouse: WarehouseResource,
    alert_webhook: AlertWebhookResource,
) -> dg.MaterializeResult:
    from anomaly_pipeline.alerts import alert_payload, empty_alerts, new_alerts, post_webhook
    from anomaly_pipeline.scoring import SCORES_TABLE

    days = partition_days(context)
    history_days = [days[0] - timedelta(days=i) for i in range(config.reopen_after_days, 0, -1)]
    known = warehouse.read_days(ALERTS_TABLE, history_days)
    known = known if not known.is_empty() else empty_alerts()
    scores = warehouse.read_days(
        SCORES_TABLE, days, columns=["user_key", "event_day", "score", "outcome", "reasons"]
    )
    guard = warehouse.read_days(GUARD_TABLE, days)
    withheld = (
        {}
        if guard.is_empty()
        else dict(guard.filter(~pl.col("passed")).select("event_day", "reason").iter_rows())
    )
    per_day = {}
    for day in days:  # in order: a day's alerts suppress the next day's duplicates
        if day in withheld and not config.override_guard:
            context.log.warning(withheld[day])
            per_day[day] = empty_alerts()
            continue
        today = scores.filter(pl.col("event_day") == day) if not scores.is_empty() else scores
        day_alerts = (
            new_alerts(today, known, config.reopen_after_days)
            if not today.is_empty()
            else empty_alerts()
        )
        per_day[day] = day_alerts
        known = pl.concat([known, day_alerts])
    alerts = pl.concat(per_day.values())
    warehouse.replace_partitions(ALERTS_TABLE, alerts, days)
    posted = None
    if alert_webhook.enabled and alerts.height:
        posted = post_webhook(
            alert_webhook.url,
            alert_payload(alerts),
            timeout=alert_webhook.timeout_s,
            retries=alert_webhook.retries,
        )
    add_metadata_per_day(
        context,
        {
            day: {
                "dagster/row_count": day_alerts.height,
                "block": day_alerts.filter(pl.col("outcome") == "block").height,
                "review": day_alerts.filter(pl.col("outcome") == "review").height,
                "guard": (
                    "passed"
                    if day not in withheld
                    else "overridden"
                    if config.override_guard
                    else "withheld"
                ),
                **({"guard_reason": withheld[day]} if day in withheld else {}),
            }
            for day, day_alerts in per_day.items()
        },
    )
    return dg.MaterializeResult(
        metadata={"webhook_status": posted if posted is not None else "not posted"}
    )
