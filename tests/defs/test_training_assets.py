"""anomaly_model through Dagster: torchrun with 2 ranks, one Dagster run, one MLflow run, the model
logged but not yet registered; a crash fails the asset with the child's error and registers
nothing; a bad spec fails it before torchrun starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from conftest import FAST_TRAINING, Pipeline, materialize, pipeline_resources

from anomaly_pipeline.paths import data_home

pytestmark = pytest.mark.slow

TRAIN_AND_MODEL = dg.AssetSelection.assets("training_set", "anomaly_model")


@pytest.fixture
def fresh_home(ingested_pipeline: Pipeline, tmp_path: Path) -> Pipeline:
    """A copy of the ingested warehouse with an empty MLflow store and an empty instance."""
    home = data_home(tmp_path).ensure()
    shutil.copy(ingested_pipeline.warehouse, home.warehouse)
    return Pipeline(
        root=home.root,
        days=ingested_pipeline.days,
        instance=dg.DagsterInstance.ephemeral(),
        resources=pipeline_resources(home.root),
        simulation=None,
    )


def _mlflow_state(root: Path) -> tuple[int, int]:
    """(runs in the experiment, registered model versions)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=data_home(root).mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("anomaly_pipeline")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    versions = client.search_model_versions("name = 'anomaly_detector'")
    return len(runs), len(versions)


def test_two_rank_training_is_one_dagster_run_and_one_mlflow_run(fresh_home: Pipeline) -> None:
    config = {
        "training_set": FAST_TRAINING["training_set"],
        "anomaly_model": {
            "config": {"kinds": ["autoencoder"], "devices": 2, "max_epochs": 2, "batch_size": 128}
        },
    }
    result = materialize(fresh_home, TRAIN_AND_MODEL, run_config={"ops": config})
    assert result.success
    metadata = result.asset_materializations_for_node("anomaly_model")[0].metadata
    training = metadata["training"].value["autoencoder"]
    assert training["world_size"] == 2 and training["epochs_run"] >= 1
    assert training["samples_per_second"] > 0 and training["best_val_loss"] > 0
    assert metadata["mlflow_run"].value.startswith("http://127.0.0.1:5000/#/experiments/")
    assert len(fresh_home.instance.get_runs()) == 1
    # logged, not registered: model_evaluation registers the run's candidates once all trained
    assert _mlflow_state(fresh_home.root) == (1, 0)
    assert training["artifact_uri"].endswith("models/autoencoder")


def test_training_crash_fails_with_the_childs_error_and_registers_nothing(
    fresh_home: Pipeline,
) -> None:
    config = {
        "training_set": FAST_TRAINING["training_set"],
        "anomaly_model": {
            "config": {
                "kinds": ["autoencoder"],
                "max_epochs": 1,
                "model_params": {"autoencoder": {"latent_dim": -3}},
            }
        },
    }
    result = materialize(
        fresh_home, TRAIN_AND_MODEL, run_config={"ops": config}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.event_specific_data
    assert "autoencoder training failed" in error.error.message
    child_error = error.user_failure_data.metadata["child_error"].value
    assert "latent_dim" in child_error and "Traceback" in child_error
    assert _mlflow_state(fresh_home.root)[1] == 0


def test_a_bad_spec_fails_the_asset_before_torchrun_starts(fresh_home: Pipeline) -> None:
    config = {
        "training_set": FAST_TRAINING["training_set"],
        "anomaly_model": {"config": {"kinds": ["autoencoder"], "precision": "fp8"}},
    }
    result = materialize(
        fresh_home, TRAIN_AND_MODEL, run_config={"ops": config}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "anomaly_model"
    assert "trainer setting 'precision' must be one of" in failure.event_specific_data.error.message
    # no spec was written, no process group started, nothing registered; the run is closed
    import mlflow

    assert mlflow.active_run() is None
    assert not list(data_home(fresh_home.root).root.rglob("spec.json"))
    assert not list(data_home(fresh_home.root).root.rglob("train.log"))
    assert _mlflow_state(fresh_home.root)[1] == 0
