"""The torchrun training entry point: DDP correctness, publishing from rank 0, failing cleanly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from conftest import free_port
from pytorch_lightning import seed_everything as pl_seed_everything

from anomaly_pipeline.defs.training.assets import AnomalyModelConfig, torchrun_command
from anomaly_pipeline.detectors.registry import load_detector
from anomaly_pipeline.nn.autoencoder import AutoencoderModule
from anomaly_pipeline.train import SpecError, TrainingSpec, train

REPO = Path(__file__).resolve().parents[1]
FEATURES = [f"f{i}" for i in range(6)]
#: One optimiser step per epoch: 64 training rows = the global batch (2 ranks × 32 or 1 × 64).
N_TRAIN, N_VAL, EPOCHS = 64, 32, 4


def _write_tables(directory: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    frame = pl.DataFrame(rng.lognormal(size=(N_TRAIN + N_VAL, len(FEATURES))), schema=FEATURES)
    frame = frame.with_columns(label=pl.lit(0, pl.Int8))
    train_path, val_path = directory / "train.parquet", directory / "val.parquet"
    frame[:N_TRAIN].write_parquet(train_path)
    frame[N_TRAIN:].write_parquet(val_path)
    return train_path, val_path


def _spec(directory: Path, batch_size: int, **overrides: Any) -> dict[str, Any]:
    train_path, val_path = _write_tables(directory)
    spec = {
        "kind": "autoencoder",
        "train_path": str(train_path),
        "val_path": str(val_path),
        "feature_names": FEATURES,
        "label_column": "label",
        # No input noise: each rank draws its own, so 2 ranks could not match 1 rank exactly.
        "model_params": {"hidden_dims": [8], "latent_dim": 3, "input_noise": 0.0},
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": EPOCHS,
            "batch_size": batch_size,
            "learning_rate": 0.01,
            "patience": 10,
            "seed": 3,
        },
        "output_dir": str(directory / "model"),
        "mlflow": {
            "tracking_uri": f"sqlite:///{directory / 'mlflow.db'}",
            "experiment_name": "ddp-test",
            "registered_model_name": "anomaly_detector",
        },
    }
    spec.update(overrides)
    return spec


def _launch(
    spec: dict[str, Any],
    directory: Path,
    config: AnomalyModelConfig | None = None,
    launchers: int = 1,
) -> list[subprocess.CompletedProcess]:
    """Run the entry point: plain python (``config`` None), or ``launchers`` copies of the
    anomaly_model asset's torchrun command for ``config`` (one per node; here all on 127.0.0.1)."""
    spec_path = directory / "spec.json"
    spec_path.write_text(json.dumps(spec))
    command = (
        torchrun_command(config, spec_path)
        if config
        else [sys.executable, "-m", "anomaly_pipeline.train", "--spec", str(spec_path)]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"}
    logs = [directory / f"launcher{i}.log" for i in range(launchers)]
    processes = []
    for log in logs:  # to files: a launcher blocked on a full pipe would stall the rendezvous
        with open(log, "w") as out:
            processes.append(
                subprocess.Popen(command, cwd=directory, env=env, stdout=out, stderr=out)
            )
    return [
        subprocess.CompletedProcess(
            command, process.wait(timeout=300), stderr=log.read_text(errors="replace")
        )
        for process, log in zip(processes, logs, strict=True)
    ]


def _registered_versions(tracking_uri: str) -> list[Any]:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).search_model_versions("name = 'anomaly_detector'")


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    directory = tmp_path_factory.mktemp("ddp")
    spec = _spec(directory, batch_size=N_TRAIN // 2)
    (result,) = _launch(spec, directory, AnomalyModelConfig(devices=2))
    assert result.returncode == 0, result.stderr[-4000:]
    return spec, directory


def _assert_matches_one_process(spec: dict[str, Any], distributed: Any, tmp_path: Path) -> None:
    """``distributed`` (trained by 2 ranks on batches of N_TRAIN / 2) has the weights of one
    process trained on the same global batch, and training moved them well beyond the tolerance."""
    single_spec = {
        **spec,
        "trainer": {**spec["trainer"], "batch_size": N_TRAIN},
        "output_dir": str(tmp_path / "single"),
        "mlflow": None,
    }
    single = train(TrainingSpec.from_dict(single_spec), environ={}).detector
    assert single.training_report_.world_size == 1

    ddp_state, single_state = distributed.module_.state_dict(), single.module_.state_dict()
    assert ddp_state.keys() == single_state.keys()
    for name in ddp_state:
        torch.testing.assert_close(ddp_state[name], single_state[name], atol=2e-5, rtol=1e-4)
    pl_seed_everything(spec["trainer"]["seed"], verbose=False)
    initial = AutoencoderModule(**distributed.module_config_).state_dict()
    assert max(float((ddp_state[n] - initial[n]).abs().max()) for n in initial) > 1e-2


@pytest.mark.slow
def test_two_ranks_match_one_rank_on_the_same_global_batch(ddp_run, tmp_path: Path) -> None:
    spec, _ = ddp_run
    ddp = load_detector(spec["output_dir"])
    assert ddp.training_report_.world_size == 2
    assert ddp.training_report_.epochs_run == EPOCHS
    assert ddp.trainer_settings.strategy == "auto"  # the spec's settings, not torchrun's layout
    _assert_matches_one_process(spec, ddp, tmp_path)


@pytest.mark.slow
def test_two_launchers_match_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    """Two torchrun launchers (two "nodes", both on 127.0.0.1) meet at a c10d rendezvous, as the
    anomaly_model asset launches them for ``num_nodes: 2``; one rank each."""
    config = AnomalyModelConfig(num_nodes=2, rdzv_endpoint=f"127.0.0.1:{free_port()}")
    spec = _spec(tmp_path, batch_size=N_TRAIN // 2, mlflow=None)
    results = _launch(spec, tmp_path, config, launchers=2)
    for result in results:
        assert result.returncode == 0, result.stderr[-4000:]
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--nproc_per_node=1"} <= set(results[0].args)
    # each launcher ran one rank of the two (Lightning logs every rank joining the group)
    ranks = [re.findall(r"GLOBAL_RANK: (\d+), MEMBER: \d+/2", r.stderr) for r in results]
    assert sorted(ranks) == [["0"], ["1"]]
    distributed = load_detector(spec["output_dir"])
    assert distributed.training_report_.world_size == 2
    assert distributed.trainer_settings.num_nodes == 1  # the spec's settings are persisted
    _assert_matches_one_process(spec, distributed, tmp_path)


@pytest.mark.slow
def test_entry_point_publishes_one_model_dir_run_and_version(ddp_run) -> None:
    from mlflow import MlflowClient

    spec, directory = ddp_run
    model_dir = Path(spec["output_dir"])
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "meta.json",
        "model.pt",
        "scaler.json",
        "training_report.json",
    ]
    assert not any(p.name.endswith(".staging") for p in directory.iterdir())

    tracking_uri = spec["mlflow"]["tracking_uri"]
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("ddp-test")
    assert experiment.artifact_location == str(directory / "mlartifacts")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["autoencoder.world_size"] == "2"
    assert run.data.params["autoencoder.trainer.batch_size"] == str(N_TRAIN // 2)
    assert len(client.get_metric_history(run.info.run_id, "autoencoder.val_loss")) == EPOCHS
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "models/autoencoder")}
    assert {
        f"models/autoencoder/{name}" for name in ("meta.json", "scaler.json", "model.pt")
    } <= logged

    versions = _registered_versions(tracking_uri)
    assert [(int(v.version), v.run_id, v.tags["kind"]) for v in versions] == [
        (1, run.info.run_id, "autoencoder")
    ]


@pytest.mark.parametrize(
    ("breakage", "error_text"),
    [
        (
            {"train_path": "/nonexistent/train.parquet"},
            "spec field 'train_path': /nonexistent/train.parquet does not exist",
        ),
        (
            {"feature_names": [*FEATURES, "no_such_feature"]},
            r"frame lacks feature column(s) ['no_such_feature']",
        ),
    ],
)
def test_crashing_spec_exits_nonzero_and_registers_nothing(
    breakage: dict[str, Any], error_text: str, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, batch_size=32, **breakage)
    (result,) = _launch(spec, tmp_path)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert error_text in result.stderr
    assert not Path(spec["output_dir"]).exists()
    database = tmp_path / "mlflow.db"
    assert not database.exists() or not _registered_versions(spec["mlflow"]["tracking_uri"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "forest"}, "spec field 'kind' must be one of"),
        ({"epochs": 3}, r"unknown spec field\(s\) \['epochs'\]"),
        ({"feature_names": []}, "must name at least one column"),
        ({"threshold_percentile": 100}, "'threshold_percentile' must be in"),
        (
            {"model_params": {"threshold_percentile": 90}},
            "use the top-level 'threshold_percentile'",
        ),
        (
            {"mlflow": {"tracking_uri": "sqlite:///x.db"}},
            "'mlflow.experiment_name' is required when 'mlflow.run_id' is null",
        ),
        ({"trainer": {"strategy": "fsdp"}}, "spec field 'trainer': trainer setting 'strategy'"),
        ({"mlflow": {"experiment_name": "x"}}, "'mlflow.tracking_uri' is required"),
        (
            {"mlflow": {"tracking_uri": "sqlite:///x.db", "runid": "r"}},
            r"unknown spec field\(s\) 'mlflow' \['runid'\]",
        ),
    ],
)
def test_spec_errors_name_the_field(change: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=message):
        TrainingSpec.from_dict({**_spec(tmp_path, batch_size=32), **change})


def test_spec_round_trips_through_json(tmp_path: Path) -> None:
    spec = TrainingSpec.from_dict(_spec(tmp_path, batch_size=32))
    assert TrainingSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.slow
def test_pipes_launch_reports_metadata_and_tags_the_dagster_run(tmp_path: Path) -> None:
    """Launched through ``PipesSubprocessClient`` (as the anomaly_model asset does), rank 0
    reports the training outcome as materialization metadata and registers a scoring bundle.
    The table has the contract's feature columns and partly unknown (null) labels."""
    import dagster as dg

    from anomaly_pipeline.bundle import ScoringBundle
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS

    rng = np.random.default_rng(3)
    table = pl.DataFrame(
        rng.lognormal(size=(N_TRAIN, len(FEATURE_COLUMNS))), schema=list(FEATURE_COLUMNS)
    )
    table = table.with_columns(label=pl.Series([None] * 40 + [0] * 20 + [1] * 4, dtype=pl.Int8))
    table.write_parquet(tmp_path / "features.parquet")
    spec = _spec(
        tmp_path,
        batch_size=32,
        train_path=str(tmp_path / "features.parquet"),
        val_path=None,
        feature_names=list(FEATURE_COLUMNS),
        threshold_percentile=95.0,
        model_params={"hidden_dims": [8], "latent_dim": 3, "alpha": 1.0},
        bundle_categories={"channel": ["Ads", "SEO"]},
    )
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))

    # No annotations: this module's annotations are strings and dg is imported locally.
    @dg.asset(required_resource_keys={"pipes"})
    def anomaly_model(context):  # type: ignore[no-untyped-def]
        return context.resources.pipes.run(
            command=[sys.executable, "-m", "anomaly_pipeline.train", "--spec", str(spec_path)],
            context=context,
            cwd=str(tmp_path),
            env={"PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"},
        ).get_materialize_result()

    result = dg.materialize([anomaly_model], resources={"pipes": dg.PipesSubprocessClient()})
    assert result.success
    [materialization] = result.asset_materializations_for_node("anomaly_model")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata["epochs_run"] == EPOCHS
    assert metadata["model_version"] == 1
    assert metadata["model_dir"] == spec["output_dir"]
    assert metadata["samples_per_second"] > 0
    [version] = _registered_versions(spec["mlflow"]["tracking_uri"])
    assert version.run_id == metadata["mlflow_run_id"]
    assert version.tags["dagster_run_id"] == result.run_id
    bundle = ScoringBundle.load(metadata["model_dir"])
    assert bundle.detector.supervised and bundle.detector.threshold_percentile == 95.0
    assert ScoringBundle.reference(metadata["model_dir"])[1] == {"channel": ["Ads", "SEO"]}


def test_two_kinds_resume_one_mlflow_run_without_collisions(tmp_path: Path) -> None:
    """The anomaly_model asset trains every kind into the Dagster run's MLflow run."""
    from mlflow import MlflowClient
    from nn_synthetic import funnel_tokens, sequence_frame

    from anomaly_pipeline.model_registry import ensure_experiment
    from anomaly_pipeline.train import publish

    rng = np.random.default_rng(5)
    sequences = sequence_frame([funnel_tokens(rng, int(n)) for n in rng.integers(3, 12, 80)], 12)
    features = pl.DataFrame(rng.lognormal(size=(80, len(FEATURES))), schema=FEATURES)
    pl.concat([features, sequences], how="horizontal").write_parquet(tmp_path / "both.parquet")
    base = _spec(
        tmp_path,
        batch_size=32,
        train_path=str(tmp_path / "both.parquet"),
        val_path=None,
        label_column=None,
    )
    tracking_uri = base["mlflow"]["tracking_uri"]
    client = MlflowClient(tracking_uri)
    run_id = client.create_run(ensure_experiment(tracking_uri, "dagster")).info.run_id
    mlflow_spec = {**base["mlflow"], "run_id": run_id, "experiment_name": None}
    versions = {}
    for kind, params in (("autoencoder", base["model_params"]), ("sequence", {"hidden_dim": 8})):
        spec = TrainingSpec.from_dict(
            {
                **base,
                "kind": kind,
                "model_params": params,
                "output_dir": str(tmp_path / kind),
                "mlflow": mlflow_spec,
            }
        )
        publication = publish(spec, train(spec, environ={}), dagster_run_id="dagster-run")
        assert publication.mlflow_run_id == run_id
        versions[kind] = publication.model_version

    assert versions == {"autoencoder": 1, "sequence": 2}
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    params = client.get_run(run_id).data.params
    assert params["autoencoder.n_features"] == str(len(FEATURES))
    assert "sequence.n_features" not in params  # feature_names given, ignored by the model
    sources = {v.tags["kind"]: v.source for v in _registered_versions(tracking_uri)}
    assert sources["autoencoder"].endswith("models/autoencoder")
    assert sources["sequence"].endswith("models/sequence")
    assert load_detector(tmp_path / "sequence").feature_names == []
