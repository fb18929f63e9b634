"""training_set, baseline_models and the torchrun-launched anomaly_model."""

import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any, Final

import dagster as dg
from pydantic import Field

from anomaly_pipeline.defs.resources import (
    TRAINING_POOL,
    WAREHOUSE_POOL,
    WarehouseResource,
    active_mlflow_run,
    mlflow_run_link,
)
from anomaly_pipeline.detectors.registry import COLD_START_KIND, LABELLED_KINDS
from anomaly_pipeline.model_refs import CandidateModel, SplitBy, TrainingSetInfo
from anomaly_pipeline.nn.settings import TrainerSettings
from anomaly_pipeline.paths import DataHome
from anomaly_pipeline.training_spec import KINDS, SpecError, TrainingSpec


class TrainingSetConfig(dg.Config):
    window_days: int = Field(
        default=90,
        ge=3,
        description="Most feature days in the window: "
        "every available day up to this cap, newest last.",
    )
    max_rows: int | None = Field(
        default=200_000,
        ge=100,
        description="Most user-days per split "
        "(train / validation / holdout); beyond it each day keeps an "
        "equal random share. null keeps every user-day.",
    )
    end_day: str | None = Field(
        default=None,
        description="Last day of the window (YYYY-MM-DD); default: the newest feature day.",
    )
    validation_days: int = Field(default=2, ge=1)
    holdout_days: int = Field(default=3, ge=1, description="Newest days, kept for evaluation only.")
    split_by: SplitBy = Field(
        default="auto",
        description="time: oldest days train, newest are held out; user: each user's rows in one "
        "split, every day in each; auto: time when the window holds the validation and holdout "
        "days and a training day, else user.",
    )


@dg.asset(
    group_name="training",
    deps=["user_day_features", "behaviour_sequences", "stg_labels"],
    pool=WAREHOUSE_POOL,
    kinds={"polars", "parquet"},
)
def training_set(
    context: dg.AssetExecutionContext, config: TrainingSetConfig, warehouse: WarehouseResource
) -> TrainingSetInfo:
    """Every feature day up to ``window_days`` (newest last), split by time into train /
    validation / holdout Parquet files, each sampled down to ``max_rows`` user-days (a history
    too short for the time split is split by user)."""
    from anomaly_pipeline.training_set import build_training_set, feature_days

    days = feature_days(warehouse.path)
    if config.end_day:
        days = [d for d in days if d <= date.fromisoformat(config.end_day)]
    days = days[-config.window_days :]
    if not days:
        raise dg.Failure("no feature days materialised yet: materialise user_day_features first")
    out_dir = warehouse.data_home.training_set_dir(context.run_id)
    info = build_training_set(
        warehouse.path,
        days,
        out_dir,
        validation_days=config.validation_days,
        holdout_days=config.holdout_days,
        max_rows=config.max_rows,
        split_by=config.split_by,
    )
    context.add_output_metadata(
        {
            "directory": dg.MetadataValue.path(info.directory),
            "days": dg.MetadataValue.json(info.days),
            "rows": dg.MetadataValue.json(info.rows),
            "available_rows": dg.MetadataValue.json(info.available_rows),
            "abnormal_rows": dg.MetadataValue.json(info.abnormal_rows),
            "split_by": info.split_by,
            "features": len(info.feature_names),
        }
    )
    return info


class BaselineConfig(dg.Config):
    kinds: list[str] = Field(
        default=["gaussian", "isolation_forest", "lof", COLD_START_KIND],
        description="Detectors to fit; keep the label-free default "
        f"{COLD_START_KIND!r}, which the gate promotes when there is no "
        "champion and no labels to compare candidates. Labelled kinds "
        f"({', '.join(LABELLED_KINDS)}; opt-in: as champion, their near-0 probabilities made "
        "every later day's score distribution read as drifted) are fitted with the training "
        "split's labels, and skipped when it holds no abnormal and normal label (they would "
        "equal their base).",
    )
    threshold_percentile: float = Field(
        default=97.0, gt=0, lt=100, description="Training-score percentile of the flag threshold."
    )
    params: dict[str, dict[str, Any]] = Field(
        default={}, description="Per-kind constructor params."
    )


@dg.asset(
    group_name="training",
    required_resource_keys={"mlflow", "warehouse"},
    pool=TRAINING_POOL,
    kinds={"scikitlearn", "mlflow"},
)
def baseline_models(
    context: dg.AssetExecutionContext, config: BaselineConfig, training_set: TrainingSetInfo
) -> list[CandidateModel]:
    """Gaussian / IsolationForest / LOF / their rank ensemble fitted on the training split, and
    the labelled kinds on its labels when it has both classes; each logged to MLflow."""
    import mlflow
    import polars as pl

    from anomaly_pipeline.detectors.preprocess import feature_matrix, label_vector
    from anomaly_pipeline.detectors.registry import kinds_to_fit, make_detector
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
    from anomaly_pipeline.model_registry import publish_bundle

    info = training_set
    home: DataHome = context.resources.warehouse.data_home
    train = pl.read_parquet(info.path("train"))
    X = feature_matrix(train, FEATURE_COLUMNS)
    y = label_vector(train)
    kinds, skipped = kinds_to_fit(config.kinds, y)
    if skipped:
        context.log.info(
            f"not fitting {', '.join(skipped)}: the training split holds no abnormal and "
            "normal label, so each would score exactly as its unsupervised base"
        )
    refs = []
    with active_mlflow_run(context.resources.mlflow) as mlflow_run_id:
        mlflow.log_params({"training_set": info.directory, "train_rows": train.height})
        for kind in kinds:
            detector = make_detector(
                kind,
                threshold_percentile=config.threshold_percentile,
                **config.params.get(kind, {}),
            )
            detector.fit(
                X, y if kind in LABELLED_KINDS else None, feature_names=list(FEATURE_COLUMNS)
            )
            # Logged, not registered: model_evaluation registers once every training succeeded.
            published = publish_bundle(
                detector,
                home.run_models_dir(context.run_id) / kind,
                train,
                info.categories,
                tracking_uri=context.resources.mlflow.tracking_uri,
                run_id=mlflow_run_id,
            )
            refs.append(
                CandidateModel(
                    kind=kind,
                    mlflow_run_id=mlflow_run_id,
                    artifact_uri=published.artifact_uri,
                    model_dir=str(published.model_dir),
                    tags={"dagster_run_id": context.run_id, "training_set": info.directory},
                )
            )
    context.add_output_metadata(
        {
            "models": dg.MetadataValue.json([asdict(ref) for ref in refs]),
            "skipped_without_labels": dg.MetadataValue.json(skipped),
            "mlflow_run": mlflow_run_link(context.resources.mlflow, mlflow_run_id),
        }
    )
    return refs


def _trainer_field(name: str) -> Any:
    """A Launchpad field for trainer setting ``name``: default and description are
    ``TrainerSettings``'s (defined once); the spec validates the value before torchrun starts."""
    field = TrainerSettings.model_fields[name]
    return Field(default=field.default, description=field.description)


class AnomalyModelConfig(dg.Config):
    """Lightning training, launched with torchrun (CPU or GPU; one or many devices)."""

    kinds: list[str] = Field(
        default=list(KINDS), description="Lightning detectors to train: " + ", ".join(KINDS) + "."
    )
    accelerator: str = _trainer_field("accelerator")
    devices: int = _trainer_field("devices")
    num_nodes: int = _trainer_field("num_nodes")
    rdzv_endpoint: str | None = Field(
        default=None,
        description="host:port of the c10d rendezvous "
        "when num_nodes > 1 (run the same job on every node).",
    )
    precision: str = _trainer_field("precision")
    max_epochs: int = _trainer_field("max_epochs")
    batch_size: int = _trainer_field("batch_size")
    learning_rate: float = _trainer_field("learning_rate")
    patience: int = _trainer_field("patience")
    min_delta: float = _trainer_field("min_delta")
    seed: int = _trainer_field("seed")
    alpha: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the semi-supervised BCE head "
        "of the autoencoder (L = reconstruction + alpha·BCE); it trains only on "
        "labelled rows, so without labels the model is unsupervised; 0 disables.",
    )
    threshold_percentile: float = Field(default=97.0, gt=0, lt=100)
    model_params: dict[str, dict[str, Any]] = Field(default={}, description="Per-kind params.")


#: Launchpad fields passed to the spec's ``trainer`` as they are.
_TRAINER_FIELDS: Final = tuple(
    name for name in AnomalyModelConfig.model_fields if name in TrainerSettings.model_fields
)


def training_spec(
    config: AnomalyModelConfig,
    kind: str,
    info: TrainingSetInfo,
    kind_dir: Path,
    mlflow: dict[str, Any] | None = None,
) -> TrainingSpec:
    """The validated spec for ``kind``: a bad value fails the asset here, before a torchrun
    process group starts."""
    from anomaly_pipeline.feature_contract import FEATURE_COLUMNS

    trainer = {name: getattr(config, name) for name in _TRAINER_FIELDS}
    try:
        return TrainingSpec.from_dict(
            {
                "kind": kind,
                "train_path": str(info.path("train")),
                "val_path": str(info.path("validation")),
                "feature_names": list(FEATURE_COLUMNS),
                "label_column": "label" if config.alpha > 0 else None,
                "threshold_percentile": config.threshold_percentile,
                "model_params": {
                    **({"alpha": config.alpha} if kind == "autoencoder" else {}),
                    **config.model_params.get(kind, {}),
                },
                "trainer": {
                    **trainer,
                    "checkpoint_dir": str(kind_dir / "checkpoints"),
                    "strategy": "ddp" if config.devices * config.num_nodes > 1 else "auto",
                },
                "output_dir": str(kind_dir / "model"),
                "bundle_categories": info.categories,
                "mlflow": mlflow,
            }
        )
    except SpecError as error:
        raise dg.Failure(description=f"anomaly_model config for kind {kind!r}: {error}") from None


def torchrun_command(config: AnomalyModelConfig, spec_path: Path) -> list[str]:
    """The torchrun invocation for one training spec (standalone on one node, c10d across nodes)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={config.devices}"]
    if config.num_nodes == 1:
        command.append("--standalone")
    else:
        if not config.rdzv_endpoint:
            raise dg.Failure(
                "num_nodes > 1 needs rdzv_endpoint (host:port reachable by every node)"
            )
        command += [
            f"--nnodes={config.num_nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={config.rdzv_endpoint}",
        ]
    return [*command, "-m", "anomaly_pipeline.train", "--spec", str(spec_path)]


def _tee_log(command: list[str], log_path: Path) -> list[str]:
    """Run ``command`` with its output both streamed and copied to ``log_path`` (exit code kept)."""
    return ["bash", "-o", "pipefail", "-c", '"$@" 2>&1 | tee "$0"', str(log_path), *command]


def _error_excerpt(log_path: Path, limit: int = 4000) -> str:
    """The first traceback in the log (a rank's root cause; torchrun's own comes after it)."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    start = text.find("Traceback (most recent call last)")
    return text[start : start + limit] if start >= 0 else text[-limit:]


@dg.asset(
    group_name="training",
    required_resource_keys={"mlflow", "pipes_subprocess_client", "warehouse"},
    pool=TRAINING_POOL,
    kinds={"pytorch", "mlflow"},
)
def anomaly_model(
    context: dg.AssetExecutionContext, config: AnomalyModelConfig, training_set: TrainingSetInfo
) -> dg.Output[list[CandidateModel]]:
    """Lightning detectors trained in a torchrun process group; rank 0 logs them to MLflow.

    DDP never runs inside this process (Lightning would re-execute the Dagster command line on
    rank 1, see STACK.md): the asset writes a spec, starts torchrun through Dagster Pipes, and
    collects what rank 0 reports.
    """
    info = training_set
    run_dir = context.resources.warehouse.data_home.run_models_dir(context.run_id)
    refs, reported = [], {}
    with active_mlflow_run(context.resources.mlflow) as mlflow_run_id:
        # registered_model_name None: model_evaluation registers once the whole run trained
        mlflow = {
            "tracking_uri": context.resources.mlflow.tracking_uri,
            "run_id": mlflow_run_id,
            "registered_model_name": None,
        }
        # every kind's spec is validated before the first process group starts
        specs = {
            kind: training_spec(config, kind, info, run_dir / kind, mlflow) for kind in config.kinds
        }
        for kind, spec in specs.items():
            kind_dir = run_dir / kind
            kind_dir.mkdir(parents=True, exist_ok=True)
            spec_path = kind_dir / "spec.json"
            spec_path.write_text(spec.model_dump_json(indent=2))
            log_path = kind_dir / "train.log"
            try:
                command = _tee_log(torchrun_command(config, spec_path), log_path)
                invocation = context.resources.pipes_subprocess_client.run(
                    context=context, command=command, extras={"kind": kind}
                )
            # PipesSubprocessClient raises DagsterPipesExecutionError (not exported by Dagster)
            # for a non-zero exit; a run's termination is a BaseException and passes through.
            except Exception as err:
                excerpt = dg.MetadataValue.text(_error_excerpt(log_path))
                raise dg.Failure(
                    description=f"{kind} training failed: {err}",
                    metadata={"child_error": excerpt, "log": dg.MetadataValue.path(str(log_path))},
                ) from err
            result = invocation.get_materialize_result()
            reported[kind] = {k: v.value for k, v in (result.metadata or {}).items()}
            refs.append(
                CandidateModel(
                    kind=kind,
                    mlflow_run_id=mlflow_run_id,
                    artifact_uri=str(reported[kind]["artifact_uri"]),
                    model_dir=str(reported[kind]["model_dir"]),
                    tags={"dagster_run_id": context.run_id},
                )
            )
    # An explicit Output: with Pipes results in flight, Dagster would read a bare list as events.
    return dg.Output(
        refs,
        metadata={
            "models": dg.MetadataValue.json([asdict(ref) for ref in refs]),
            "training": dg.MetadataValue.json(reported),
            "mlflow_run": mlflow_run_link(context.resources.mlflow, mlflow_run_id),
            "devices": config.devices,
            "num_nodes": config.num_nodes,
            "accelerator": config.accelerator,
        },
    )
