"""Analyst feedback end to end: verdicts on week 1's alerts raise week 2's PR-AUC.

The story an analyst lives: two simulated weeks arrive without any label file. A first model is
trained on week 1 without labels (the gate's cold start), week 1 is scored and alerted, and an
analyst judges every alert of week 1 — here the simulator's ground truth plays the analyst, so
each verdict is right. The verdicts land as ``feedback_<day>.csv`` files, ``event_labels``
ingests them, and the model is retrained on the same week. Week 2 (never labelled, never seen
by either model) then measures what the feedback bought: the semi-supervised autoencoder
trained with the verdicts ranks week 2's abnormal user-days better than the same autoencoder
trained without them. Real Dagster runs, dbt, MLflow and torchrun throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dagster as dg
import polars as pl
import pytest
from conftest import Pipeline, materialize, pipeline_resources

from anomaly_pipeline import feedback, warehouse
from anomaly_pipeline.alerts import ALERT_SCHEMA
from anomaly_pipeline.bundle import ScoringBundle
from anomaly_pipeline.defs.ingest.assets import FEEDBACK_ACCOUNTING_CHECK
from anomaly_pipeline.defs.jobs import INGEST_FEATURES, SCORING, TRAINING
from anomaly_pipeline.evaluation import evaluate_detector
from anomaly_pipeline.paths import data_home
from anomaly_pipeline.privacy import pseudonym_key, pseudonymize_many
from anomaly_pipeline.scoring import evaluation_frame
from anomaly_pipeline.training_set import load_user_days

pytestmark = pytest.mark.slow

START = date(2026, 9, 1)
WEEK_1 = [START + timedelta(days=i) for i in range(7)]
WEEK_2 = [START + timedelta(days=7 + i) for i in range(7)]
N_USERS = 800
#: The label-free default (the cold start needs it) and the autoencoder whose head uses labels.
TRAINING_OPS: dict[str, Any] = {
    "training_set": {
        "config": {
            "window_days": len(WEEK_1),
            "end_day": WEEK_1[-1].isoformat(),
            "validation_days": 1,
            "holdout_days": 1,
        }
    },
    "baseline_models": {"config": {"kinds": ["gaussian", "rank_ensemble"]}},
    "anomaly_model": {
        "config": {"kinds": ["autoencoder"], "max_epochs": 8, "batch_size": 256, "devices": 1}
    },
}


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Two simulated weeks in the landing folder; the truth is kept aside, not delivered."""
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    root = tmp_path_factory.mktemp("feedback")
    home = data_home(root).ensure()
    simulation = simulate(
        SimulationConfig(start_day=START, n_days=14, n_users=N_USERS, seed=23, anomaly_share=0.05)
    )
    write_landing(simulation, home.landing_events, root / "truth_not_delivered")
    with dg.DagsterInstance.local_temp(str(home.dagster_home)) as instance:
        yield Pipeline(
            root=root,
            days=[*WEEK_1, *WEEK_2],
            instance=instance,
            resources=pipeline_resources(root),
            simulation=simulation,
        )


def _truth(pipeline: Pipeline) -> pl.DataFrame:
    """The simulator's abnormal user-days, keyed like the warehouse (user_key, event_day)."""
    labels = pipeline.simulation.labels
    return labels.select(
        pl.Series(
            "user_key", pseudonymize_many(labels["user_id"].to_list(), pseudonym_key()), pl.String
        ),
        pl.col("event_day"),
        pl.col("anomaly_type"),
    )


def _train(pipeline: Pipeline) -> dg.ExecuteInProcessResult:
    result = materialize(pipeline, TRAINING, run_config={"ops": TRAINING_OPS})
    assert result.success
    return result


def _week_2_pr_auc(pipeline: Pipeline, training: dg.ExecuteInProcessResult) -> float:
    """PR-AUC of the run's autoencoder on week 2 against the simulator's truth."""
    (model,) = training.output_for_node("anomaly_model")
    bundle = ScoringBundle.load(model.model_dir)
    frame = (
        load_user_days(pipeline.warehouse, WEEK_2)
        .drop("label", "anomaly_type", "label_source")
        .join(_truth(pipeline), on=["user_key", "event_day"], how="left")
        .with_columns(label=pl.col("anomaly_type").is_not_null().cast(pl.Int8))
    )
    evaluation = evaluate_detector(
        evaluation_frame(bundle, frame), threshold=bundle.threshold_points
    )
    assert evaluation.pr_auc is not None
    return evaluation.pr_auc.value


def _write_feedback(pipeline: Pipeline) -> pl.DataFrame:
    """The analyst's verdicts on every week-1 alert (from the truth), one file per day."""
    alerts = warehouse.read_days(pipeline.warehouse, "scoring.anomaly_alerts", WEEK_1)
    truth = _truth(pipeline)
    judged = alerts.join(truth, on=["user_key", "event_day"], how="left")
    landing = data_home(pipeline.root).landing_labels
    for day in WEEK_1:
        rows = feedback.template(
            judged.filter(pl.col("event_day") == day).select(list(ALERT_SCHEMA))
        )
        verdicts = rows.join(
            judged.select("alert_id", truth_type="anomaly_type"), on="alert_id"
        ).with_columns(
            verdict=pl.when(pl.col("truth_type").is_not_null())
            .then(pl.lit("confirmed"))
            .otherwise(pl.lit("false_positive")),
            anomaly_type=pl.col("truth_type"),
            analyst=pl.lit("simulated analyst"),
        )
        verdicts.drop("truth_type").write_csv(landing / f"feedback_{day.isoformat()}.csv")
    return judged


def test_feedback_on_week_1_raises_week_2_pr_auc(
    unlabelled: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = unlabelled
    assert materialize(pipeline, INGEST_FEATURES, tags=pipeline.range_tags()).success

    # Week 1 without labels: cold-start champion, scores and alerts for the week.
    without = _train(pipeline)
    assert materialize(pipeline, SCORING, tags=pipeline.range_tags(WEEK_1)).success
    judged = _write_feedback(pipeline)
    confirmed = judged.filter(pl.col("anomaly_type").is_not_null()).height
    assert judged.height > confirmed > 0  # both verdicts occur

    # The verdicts become labels of week 1 (nothing quarantined), then the same week retrains.
    # (dbt's source tests on event_labels are left out: the feedback check is the one at stake)
    accounting = dg.AssetCheckKey(dg.AssetKey("event_labels"), FEEDBACK_ACCOUNTING_CHECK)
    selection = dg.AssetSelection.assets("event_labels").without_checks()
    ingested = materialize(
        pipeline,
        selection | dg.AssetSelection.checks(accounting),
        tags=pipeline.range_tags(WEEK_1),
    )
    checks = ingested.get_asset_check_evaluations()
    assert len(checks) == len(WEEK_1) and all(c.passed for c in checks)
    stored = warehouse.read_days(pipeline.warehouse, feedback.FEEDBACK_TABLE, WEEK_1)
    assert stored.height == judged.height
    assert warehouse.count_by_day(
        pipeline.warehouse, feedback.FEEDBACK_QUARANTINE_TABLE, WEEK_1
    ) == {d: 0 for d in WEEK_1}
    with_feedback = _train(pipeline)

    # The training set carries the verdicts as labels; the gate measured quality with them.
    info = with_feedback.output_for_node("training_set")
    assert (
        info.abnormal_rows["train"] > 0
        and info.labelled_rows["train"] > info.abnormal_rows["train"]
    )
    (gate,) = [
        e for e in with_feedback.get_asset_check_evaluations() if e.check_name == "champion_gate"
    ]
    assert "cold start" not in gate.description, gate.description

    before, after = _week_2_pr_auc(pipeline, without), _week_2_pr_auc(pipeline, with_feedback)
    with capsys.disabled():
        print(
            f"\nweek-1 alerts judged: {judged.height} ({confirmed} confirmed); "
            f"week-2 autoencoder PR-AUC without feedback {before:.3f}, with {after:.3f}; "
            f"gate: {gate.description}"
        )
    assert after > before
