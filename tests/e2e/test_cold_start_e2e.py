"""Real logs without labels, end to end: a gate that cannot decide fails with its reason; a cold
start ends with a champion and scores; a source the champion never saw gets scores but no alerts;
retraining on that source lifts the guard; a retrain that keeps the champion is a green run.

Runs on its own data directory and instance: twelve simulated days with **no label files** (the
state of a user's own history), the first six from one source and the last six from a source
whose sessions look nothing like it (the simulator's drift knob: dwell times and inactivity gaps
×0.1, part of the traffic through an unseen channel).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from conftest import Pipeline, failure_sensor_context, materialize, pipeline_resources

from anomaly_pipeline import warehouse
from anomaly_pipeline.defs.jobs import INGEST_FEATURES, SCORING, TRAINING
from anomaly_pipeline.defs.monitoring.automation import run_failure_alert_sensor
from anomaly_pipeline.detectors.registry import COLD_START_KIND
from anomaly_pipeline.model_registry import get_champion
from anomaly_pipeline.paths import data_home

pytestmark = pytest.mark.slow

START = date(2026, 9, 1)
DAYS = [START + timedelta(days=i) for i in range(12)]
SOURCE_A, SOURCE_B = DAYS[:6], DAYS[6:]
EXPECTED_SHARE = 0.03  # 1 − the default threshold percentile (97)


def _training(days: list[date]) -> dict:
    """Label-free training on ``days``: two baselines (the default among them), no torch."""
    return {
        "ops": {
            "training_set": {
                "config": {
                    "end_day": days[-1].isoformat(),
                    "window_days": len(days),
                    "validation_days": 1,
                    "holdout_days": 2,
                }
            },
            "baseline_models": {"config": {"kinds": ["isolation_forest", COLD_START_KIND]}},
            "anomaly_model": {"config": {"kinds": []}},
        }
    }


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return check


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    root = tmp_path_factory.mktemp("cold_start")
    home = data_home(root).ensure()
    simulation = simulate(
        SimulationConfig(
            start_day=START,
            n_days=len(DAYS),
            n_users=900,
            seed=3,
            anomaly_share=0.01,
            drift_from=SOURCE_B[0],
            drift_dwell_factor=0.1,
        )
    )
    write_landing(simulation, home.landing_events, home.landing_labels)
    for label_file in Path(home.landing_labels).iterdir():
        label_file.unlink()
    with dg.DagsterInstance.local_temp(str(home.dagster_home)) as instance:
        pipeline = Pipeline(
            root=root,
            days=DAYS,
            instance=instance,
            resources=pipeline_resources(root),
            simulation=simulation,
        )
        assert materialize(pipeline, INGEST_FEATURES, tags=pipeline.range_tags()).success
        yield pipeline


def test_cold_start_guard_and_retraining_on_a_new_source(
    unlabelled: Pipeline, webhook: tuple[str, list[dict]]
) -> None:
    uri = data_home(unlabelled.root).mlflow_tracking_uri

    # A gate that cannot decide (no labels, no champion, the default not trained) fails the run,
    # and the failure alert carries the gate's own reason.
    without_default = _training(SOURCE_A)
    without_default["ops"]["baseline_models"]["config"]["kinds"] = ["isolation_forest"]
    failed = materialize(unlabelled, TRAINING, run_config=without_default, raise_on_error=False)
    assert not failed.success and get_champion(uri) is None
    url, received = webhook
    run_failure_alert_sensor(
        failure_sensor_context(
            unlabelled.instance, unlabelled.instance.get_run_by_id(failed.run_id), url
        )
    )
    (step,) = received[0]["failed_steps"]
    assert "champion_gate" in step["step"]
    assert f"add {COLD_START_KIND!r} to baseline_models' kinds" in step["error"]

    def scores_of(day: date):
        return warehouse.read_days(unlabelled.warehouse, "scoring.daily_anomaly_scores", [day])

    # Cold start: no labels, no champion → the label-free default is promoted, and says so.
    first = materialize(unlabelled, TRAINING, run_config=_training(SOURCE_A))
    gate = _check(first, "champion_gate")
    assert first.success and gate.passed
    assert gate.metadata["decision"].value == "promote"
    assert gate.metadata["cold_start_default"].value == COLD_START_KIND
    assert "cold start: no champion yet" in gate.description
    assert "no labelled held-out user-days" in gate.description
    (evaluation,) = first.asset_materializations_for_node("model_evaluation")
    report = Path(evaluation.metadata["report_path"].value).read_text()
    assert "Champion gate: promote" in report and "label-free default" in report
    champion = get_champion(uri)
    assert champion.kind == COLD_START_KIND
    # The MLflow run says what ran: the job (an ad-hoc materialisation here), the training
    # window and the candidates; and what the gate decided.
    run = mlflow.MlflowClient(uri).get_run(champion.run_id)
    assert run.info.run_name == (
        f"training {SOURCE_A[0]}..{SOURCE_A[-1]} isolation_forest+{COLD_START_KIND}"
    )
    assert (run.data.tags["kinds"], run.data.tags["gate_action"]) == (
        f"isolation_forest,{COLD_START_KIND}",
        "promote",
    )
    # Every evaluated candidate's version carries the gate's decision about it, the failed
    # gate's included: the registry reads as a history of decisions.
    versions = {
        (v.tags["dagster_run_id"], v.tags["kind"]): v.tags
        for v in mlflow.MlflowClient(uri).search_model_versions()
    }
    assert versions[(failed.run_id, "isolation_forest")]["gate_action"] == "error"
    assert versions[(first.run_id, COLD_START_KIND)]["gate_outcome"] == "promoted"
    assert versions[(first.run_id, "isolation_forest")]["gate_outcome"] == "not promoted"
    assert "cold start" in versions[(first.run_id, "isolation_forest")]["gate_reason"]

    # One range run over the champion's source's last day and the new source's first day: both
    # get scores; the guard judges each day, withholding only the new source's alerts.
    known_day, new_day = SOURCE_A[-1], SOURCE_B[0]
    flooded = materialize(unlabelled, SCORING, tags=unlabelled.range_tags([known_day, new_day]))
    for day in (known_day, new_day):
        features = warehouse.read_days(
            unlabelled.warehouse, "features.user_day_features", [day], columns=["user_key"]
        )
        assert scores_of(day).height == features.height > 0
    guards = {
        e.partition: e
        for e in flooded.get_asset_check_evaluations()
        if e.check_name == "alert_guard"
    }  # one evaluation per day
    assert guards[known_day.isoformat()].passed
    guard = guards[new_day.isoformat()]
    assert flooded.success and not guard.passed and guard.metadata["alerts_withheld"].value
    assert "alerts withheld" in guard.description and "retrain on this source" in guard.description
    assert (
        "× the expected 3.0%" in guard.description or "score distribution PSI" in guard.description
    )
    alerts = {m.partition: m for m in flooded.asset_materializations_for_node("anomaly_alerts")}
    assert alerts[new_day.isoformat()].metadata["guard"].value == "withheld"
    assert alerts[new_day.isoformat()].metadata["dagster/row_count"].value == 0
    assert "retrain on this source" in alerts[new_day.isoformat()].metadata["guard_reason"].value
    assert alerts[known_day.isoformat()].metadata["guard"].value == "passed"
    posted = warehouse.read_days(
        unlabelled.warehouse, "scoring.anomaly_alerts", [known_day, new_day]
    )
    assert set(posted["event_day"]) == {known_day}, "the good day still alerts"

    # The guard can be overridden for a run.
    overridden = materialize(
        unlabelled,
        dg.AssetSelection.assets("anomaly_alerts"),
        partition_key=new_day.isoformat(),
        run_config={"ops": {"anomaly_alerts": {"config": {"override_guard": True}}}},
    )
    (alerts,) = overridden.asset_materializations_for_node("anomaly_alerts")
    assert alerts.metadata["guard"].value == "overridden"
    assert alerts.metadata["dagster/row_count"].value > 0

    # Retraining on the new source (still no labels): the champion does not know this data, so
    # the label-free default trained on it takes over, and the guard lets the day through.
    second = materialize(unlabelled, TRAINING, run_config=_training(SOURCE_B))
    gate = _check(second, "champion_gate")
    assert second.success and gate.metadata["decision"].value == "promote"
    assert "the champion does not know this data" in gate.description
    assert get_champion(uri).version != champion.version
    held_out_day = SOURCE_B[-1]  # a held-out day of that training: not trained on
    rescored = materialize(unlabelled, SCORING, partition_key=held_out_day.isoformat())
    guard = _check(rescored, "alert_guard")
    assert guard.passed, guard.description
    flagged_share = scores_of(held_out_day)["flagged"].mean()
    assert flagged_share <= 2 * EXPECTED_SHARE, flagged_share
    assert set(scores_of(held_out_day)["model_version"]) == {str(get_champion(uri).version)}

    # Another label-free retrain on the same source keeps that champion: a green run.
    third = materialize(unlabelled, TRAINING, run_config=_training(SOURCE_B))
    gate = _check(third, "champion_gate")
    assert third.success and gate.passed and gate.metadata["decision"].value == "keep"
    assert not third.asset_materializations_for_node("champion_model")
    assert "keeping the champion" in gate.description
    print(f"\nflagged share after retraining: {flagged_share:.3f}")
