"""MLflow model registry round trip on a sqlite backend with a local artifact root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from anomaly_pipeline.detectors.autoencoder import AutoencoderDetector
from anomaly_pipeline.model_registry import (
    CHAMPION_ALIAS,
    REGISTERED_MODEL,
    ModelVersionRef,
    default_artifact_location,
    ensure_experiment,
    get_champion,
    load_detector_version,
    log_detector,
    log_detector_files,
    register_detector,
    set_champion,
)
from anomaly_pipeline.paths import data_home


@pytest.fixture
def tracking_uri(tmp_path: Path) -> Iterator[str]:
    """The contract's tracking URI inside a temporary data home; restores MLflow's global URI."""
    previous = mlflow.get_tracking_uri()
    uri = data_home(tmp_path).ensure().mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(400, 5)).astype(np.float32)
    detector = AutoencoderDetector(
        hidden_dims=[8], latent_dim=2, trainer={"accelerator": "cpu", "max_epochs": 2}
    )
    detector.fit(X, feature_names=[f"f{i}" for i in range(5)])
    return detector.save(tmp_path_factory.mktemp("detector") / "model"), X


def test_artifacts_go_beside_the_sqlite_database(tracking_uri: str, tmp_path: Path) -> None:
    assert default_artifact_location(tracking_uri) == str(data_home(tmp_path).mlflow_artifacts)
    assert default_artifact_location("http://mlflow:5000") is None
    experiment_id = ensure_experiment(tracking_uri, "exp")
    assert ensure_experiment(tracking_uri, "exp") == experiment_id
    location = mlflow.get_experiment(experiment_id).artifact_location
    assert location == str(data_home(tmp_path).mlflow_artifacts)
    # MLflow's Default experiment, created with the database, is rooted there too (not ./mlruns).
    default = Path(mlflow.get_experiment("0").artifact_location.removeprefix("file://"))
    assert default.is_relative_to(data_home(tmp_path).mlflow_artifacts)


def test_register_champion_and_load_round_trip(tracking_uri: str, fitted, tmp_path: Path) -> None:
    detector_dir, X = fitted
    home = data_home(tmp_path)
    assert get_champion(tracking_uri) is None  # no registered model yet
    assert home.champion() is None
    with mlflow.start_run(experiment_id=ensure_experiment(tracking_uri, "exp")) as run:
        first = log_detector(detector_dir, tags={"dagster_run_id": "run-1"})
        second = log_detector(detector_dir, artifact_path="model_b")
    assert first == ModelVersionRef(
        name=REGISTERED_MODEL,
        version=1,
        run_id=run.info.run_id,
        kind="autoencoder",
        source_dir=first.source_dir,
    )
    assert Path(first.source_dir).is_relative_to(data_home(tmp_path).mlflow_artifacts)
    assert (Path(first.source_dir) / "meta.json").is_file()
    assert second.version == 2
    assert get_champion(tracking_uri) is None  # registered, but no alias set

    assert set_champion(tracking_uri, 1) == first
    assert get_champion(tracking_uri) == first
    assert set_champion(tracking_uri, second.version) == second
    assert get_champion(tracking_uri) == second
    client = mlflow.MlflowClient(tracking_uri)
    assert client.get_model_version(REGISTERED_MODEL, "1").tags["dagster_run_id"] == "run-1"
    assert client.get_model_version(REGISTERED_MODEL, "2").aliases == [CHAMPION_ALIAS]

    original = AutoencoderDetector.load(detector_dir)
    loaded = load_detector_version(tracking_uri, get_champion(tracking_uri).version)
    assert isinstance(loaded, AutoencoderDetector)
    assert loaded.feature_names == original.feature_names
    np.testing.assert_array_equal(loaded.decision_function(X), original.decision_function(X))

    # The one champion lookup of evaluation, scoring and drift: the data home's registry, its
    # bundle copied once into the data home's cache.
    champion = home.champion()
    assert champion.ref == second
    assert champion.bundle_dir == home.champion_cache / f"{REGISTERED_MODEL}-v2"
    assert sorted(p.name for p in champion.bundle_dir.iterdir()) == sorted(
        p.name for p in detector_dir.iterdir()
    )
    assert home.champion() == champion  # cached, not re-fetched
    assert [p.name for p in home.champion_cache.iterdir()] == [champion.bundle_dir.name]


def test_registering_logged_files_twice_gives_one_version(tracking_uri: str, fitted) -> None:
    """model_evaluation registers a run's candidates; re-executing it must not add twins."""
    experiment_id = ensure_experiment(tracking_uri, "exp")
    run_id = mlflow.MlflowClient(tracking_uri).create_run(experiment_id).info.run_id
    source = log_detector_files(tracking_uri, run_id, fitted[0], "models/autoencoder")
    assert (Path(source) / "meta.json").is_file()
    assert mlflow.MlflowClient(tracking_uri).get_run(run_id).info.status == "RUNNING"  # untouched
    first = register_detector(tracking_uri, source, run_id, kind="autoencoder")
    assert register_detector(tracking_uri, source, run_id, kind="autoencoder") == first
    assert first.version == 1 and first.kind == "autoencoder"


def test_log_detector_needs_an_active_run(tracking_uri: str, fitted) -> None:
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_detector(fitted[0])
