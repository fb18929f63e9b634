"""Training entry point: ``python -m anomaly_pipeline.train --spec spec.json``.

The Dagster ``anomaly_model`` asset launches it as a separate process group,
``torchrun --standalone --nproc_per_node=N -m anomaly_pipeline.train --spec …`` through
``dagster.PipesSubprocessClient``, because DDP inside a Dagster process re-executes the process's
own command line (see STACK.md). Lightning recognises torchrun's environment and joins its process
group; ``TrainerSettings.for_world`` makes the settings agree with the launch.

Every rank reads the data and trains (each on its ``DistributedSampler`` shard). Rank 0 alone then
publishes: it writes the fitted detector to ``output_dir`` (``Detector.save``), logs params,
per-epoch losses and that directory to MLflow (into ``mlflow.run_id`` when the asset already
opened a run, so one Dagster run = one MLflow run), registers a model version when the spec names
a registered model, and — when launched by Dagster Pipes — reports the outcome (the artifact URI
included) as materialization metadata. The Dagster asset names no registered model: it registers
the versions itself once every training of its run has succeeded, so a killed run leaves the
registry untouched. Any error propagates: the process exits non-zero with the traceback on stderr,
and since publishing is the last step, nothing is registered for a failed run.

The spec is the JSON the asset wrote with ``TrainingSpec.model_dump_json``, read back with
``TrainingSpec.from_file`` (``model_validate_json``); this module imports neither torch nor mlflow
at module level.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# SpecError is re-exported: callers of the entry point catch it from here.
from anomaly_pipeline.training_spec import SpecError, TrainingSpec  # noqa: F401

if TYPE_CHECKING:
    import polars as pl

    from anomaly_pipeline.detectors.base import Detector
    from anomaly_pipeline.nn.fitting import TrainingReport

_LOG = logging.getLogger("anomaly_pipeline.train")


@dataclass(frozen=True)
class TrainingOutcome:
    """A fitted detector with the training table it saw (the bundle is fitted on it too)."""

    detector: Detector
    report: TrainingReport
    train_frame: pl.DataFrame
    n_val: int | None


@dataclass(frozen=True)
class Publication:
    """Where rank 0 put the results."""

    model_dir: Path
    mlflow_run_id: str | None
    model_version: int | None
    #: Where the detector's files were logged in the run's artifacts (a version's source).
    artifact_uri: str | None


def train(spec: TrainingSpec, environ: Mapping[str, str] = os.environ) -> TrainingOutcome:
    """Read the data and fit the detector (every rank runs this)."""
    from anomaly_pipeline.detectors.registry import make_detector

    settings = spec.trainer
    if "WORLD_SIZE" in environ:  # started by torchrun (or another torch.distributed launcher)
        settings = settings.for_world(
            int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_WORLD_SIZE", environ["WORLD_SIZE"]))
        )
    train_frame = _read_table("train_path", spec.train_path)
    val_frame = _read_table("val_path", spec.val_path) if spec.val_path else None
    X, y = _inputs(spec, train_frame, "train_path")
    X_val, y_val = _inputs(spec, val_frame, "val_path") if val_frame is not None else (None, None)
    params = dict(spec.model_params)
    if spec.threshold_percentile is not None:
        params["threshold_percentile"] = spec.threshold_percentile
    detector = make_detector(spec.kind, trainer=settings, **params)
    feature_names = spec.feature_names if spec.kind != "sequence" else None
    detector.fit(
        X,
        y,
        feature_names=feature_names,  # type: ignore[call-arg]
        X_val=X_val,
        y_val=y_val,
    )
    report = detector.training_report_  # type: ignore[attr-defined]
    # Persist the spec's settings, not this launch's process-group layout: a loaded detector
    # refitted elsewhere must not inherit strategy="ddp" and torchrun's device count.
    detector.trainer_settings = spec.trainer  # type: ignore[attr-defined]
    return TrainingOutcome(
        detector=detector,
        report=report,
        train_frame=train_frame,
        n_val=val_frame.height if val_frame is not None else None,
    )


def publish(
    spec: TrainingSpec, outcome: TrainingOutcome, dagster_run_id: str | None = None
) -> Publication:
    """Rank 0: save the detector, log it to MLflow and (when asked) register a version.

    A run named by ``mlflow.run_id`` belongs to the caller (the Dagster asset): this process logs
    into it through the client and leaves its status alone — ending it here would show the Dagster
    run's MLflow run FINISHED while later steps still train. A run started here is ended here.
    """
    if spec.mlflow is None:
        from anomaly_pipeline.bundle import write_bundle

        model_dir = write_bundle(
            outcome.detector, Path(spec.output_dir), outcome.train_frame, spec.bundle_categories
        )
        return Publication(
            model_dir=model_dir, mlflow_run_id=None, model_version=None, artifact_uri=None
        )
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    from anomaly_pipeline.model_registry import DAGSTER_RUN_TAG, ensure_experiment, publish_bundle

    config = spec.mlflow
    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    own_run = config.run_id is None
    if own_run:
        assert config.experiment_name is not None  # MlflowSpec requires it without run_id
        run_id = client.create_run(
            ensure_experiment(config.tracking_uri, config.experiment_name, config.artifact_location)
        ).info.run_id
    else:
        run_id = config.run_id
    tags = {DAGSTER_RUN_TAG: dagster_run_id} if dagster_run_id else {}
    # One Dagster run may train several kinds into one MLflow run: names are scoped by kind so
    # that params (immutable in MLflow), metrics and model artifacts never collide.
    scope = spec.kind
    now = int(time.time() * 1000)
    summary = {
        "best_val_loss": outcome.report.best_val_loss,
        "samples_per_second": outcome.report.samples_per_second,
        "epochs_run": float(outcome.report.epochs_run),
    }
    if outcome.detector.threshold_ is not None:
        summary["threshold"] = outcome.detector.threshold_
    metrics = [
        Metric(f"{scope}.{name}", value, now, record.epoch)
        for record in outcome.report.history
        for name, value in (("train_loss", record.train_loss), ("val_loss", record.val_loss))
    ]
    metrics += [Metric(f"{scope}.{k}", v, now, 0) for k, v in summary.items()]
    try:
        client.log_batch(
            run_id,
            metrics=metrics,
            params=[Param(f"{scope}.{k}", v) for k, v in _params(spec, outcome).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        published = publish_bundle(
            outcome.detector,
            Path(spec.output_dir),
            outcome.train_frame,
            spec.bundle_categories,
            tracking_uri=config.tracking_uri,
            run_id=run_id,
            register_as=config.registered_model_name,
            tags=tags,
        )
    except BaseException:
        if own_run:
            client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    if own_run:
        client.set_terminated(run_id)
    return Publication(
        model_dir=published.model_dir,
        mlflow_run_id=run_id,
        model_version=published.version.version if published.version else None,
        artifact_uri=published.artifact_uri,
    )


def pipes_metadata(outcome: TrainingOutcome, publication: Publication) -> dict[str, Any]:
    """Materialization metadata rank 0 reports to Dagster."""
    metadata: dict[str, Any] = {
        "epochs_run": outcome.report.epochs_run,
        "best_val_loss": outcome.report.best_val_loss,
        "samples_per_second": round(outcome.report.samples_per_second, 1),
        "world_size": outcome.report.world_size,
        "model_dir": str(publication.model_dir),
    }
    if publication.mlflow_run_id is not None:
        metadata["mlflow_run_id"] = publication.mlflow_run_id
    if publication.model_version is not None:
        metadata["model_version"] = publication.model_version
    if publication.artifact_uri is not None:
        metadata["artifact_uri"] = publication.artifact_uri
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--spec``, train on every rank, publish on rank 0; errors propagate (exit 1)."""
    parser = argparse.ArgumentParser(
        prog="python -m anomaly_pipeline.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--spec", required=True, help="path of the JSON training spec")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    spec = TrainingSpec.from_file(args.spec)
    if int(os.environ.get("RANK", "0")) != 0:
        train(spec)
        return 0
    from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

    if not PipesEnvVarParamsLoader().is_dagster_pipes_process():
        _report(publish(spec, train(spec)))
        return 0
    with open_dagster_pipes() as pipes:
        outcome = train(spec)
        publication = publish(spec, outcome, dagster_run_id=pipes.run_id)
        _report(publication)
        pipes.report_asset_materialization(metadata=pipes_metadata(outcome, publication))
    return 0


def _report(publication: Publication) -> None:
    _LOG.info(
        "model written to %s (mlflow run %s, version %s)",
        publication.model_dir,
        publication.mlflow_run_id,
        publication.model_version,
    )


def _read_table(field_name: str, path: str) -> Any:
    import polars as pl

    if not Path(path).is_file():
        raise FileNotFoundError(f"spec field {field_name!r}: {path} does not exist")
    return pl.read_parquet(path)


def _inputs(spec: TrainingSpec, frame: Any, field_name: str) -> tuple[Any, Any]:
    """Detector input and labels of one table: feature matrix (tabular) or the frame (sequence)."""
    if spec.kind == "sequence":
        return frame, None
    from anomaly_pipeline.detectors.preprocess import feature_matrix, label_vector

    try:
        X = feature_matrix(frame, spec.feature_names)
    except ValueError as error:
        raise ValueError(
            f"spec field 'feature_names' does not fit the {field_name} table "
            f"{spec.train_path if field_name == 'train_path' else spec.val_path}: "
            f"{error}"
        ) from None
    if spec.label_column is None:
        return X, None
    if spec.label_column not in frame.columns:
        raise ValueError(
            f"spec field 'label_column': {field_name} table lacks column {spec.label_column!r}"
        )
    # Null labels (days without ground truth) become NaN: unknown, skipped by the labelled head.
    return X, label_vector(frame, spec.label_column)


def _params(spec: TrainingSpec, outcome: TrainingOutcome) -> dict[str, str]:
    """Flat MLflow params (unscoped): the spec's choices plus the sizes of the data."""
    params: dict[str, Any] = {
        "label_column": spec.label_column,
        "threshold_percentile": outcome.detector.threshold_percentile,
        "n_train": outcome.train_frame.height,
        "n_val": outcome.n_val,
        "world_size": outcome.report.world_size,
    }
    if spec.kind != "sequence":
        params["n_features"] = len(spec.feature_names)
    params.update({f"model.{k}": v for k, v in spec.model_params.items()})
    params.update({f"trainer.{k}": v for k, v in spec.trainer.to_dict().items()})
    return {
        key: json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        for key, value in params.items()
    }


if __name__ == "__main__":
    sys.exit(main())
