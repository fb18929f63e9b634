"""MLflow model registry for fitted detectors: log, register, pick the champion, load.

A fitted detector is a directory (``Detector.save``: ``meta.json``, weights, scaler, feature list).
It is logged as plain run artifacts and registered as a version of ``anomaly_detector`` with
``MlflowClient.create_model_version`` pointing at those artifacts. This is deliberately not an
MLflow "flavor" model: MLflow 3 pyfunc logging would pickle a wrapper class, infer or resolve
environments, and ``mlflow.register_model("runs:/…")`` only accepts MLflow 3 *logged models*; the
artifacts + model-version route works offline with a sqlite backend and keeps the files exactly as
``load_detector`` expects them. The alias ``champion`` marks the version that scores production
days.

Heavy imports (mlflow) happen inside the functions: the Dagster code location imports this module
at load time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

if TYPE_CHECKING:
    import polars as pl
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from anomaly_pipeline.detectors.base import Detector

REGISTERED_MODEL: Final[str] = "anomaly_detector"
CHAMPION_ALIAS: Final[str] = "champion"
#: Model-version tags written by ``log_detector``.
KIND_TAG: Final[str] = "kind"
DAGSTER_RUN_TAG: Final[str] = "dagster_run_id"
_SQLITE_PREFIX: Final[str] = "sqlite:///"


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered detector version.

    ``source_dir`` is where the version's detector directory lives in the artifact store (a local
    path for the embedded default, otherwise an artifact URI).
    """

    name: str
    version: int
    run_id: str
    kind: str
    source_dir: str


class Champion(NamedTuple):
    """The version carrying the ``champion`` alias and a local copy of its scoring bundle."""

    ref: ModelVersionRef
    bundle_dir: Path


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifact root for new experiments: ``mlartifacts/`` beside a sqlite database.

    A sqlite backend has no artifact server, and MLflow's default (``./mlruns`` relative to the
    process's working directory) would scatter artifacts wherever a process happened to start.
    Other backends (a tracking server) choose their own root: None.
    """
    if not tracking_uri.startswith(_SQLITE_PREFIX):
        return None
    database = Path(tracking_uri[len(_SQLITE_PREFIX) :]).expanduser().resolve()
    return str(database.parent / "mlartifacts")


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created (with an explicit artifact root) when missing."""
    _create_sqlite_store(tracking_uri)
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location or default_artifact_location(tracking_uri)
    if location is not None and "://" not in location:
        Path(location).mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=location)


def _create_sqlite_store(tracking_uri: str) -> None:
    """Create a new sqlite tracking database with its artifact root beside it.

    MLflow creates the ``Default`` experiment with the database, rooted at ``./mlruns`` of the
    process's working directory unless told otherwise; a run that lands there (an ad-hoc
    ``mlflow.start_run()``) would write outside the data directory.
    """
    location = default_artifact_location(tracking_uri)
    if location is None or Path(tracking_uri[len(_SQLITE_PREFIX) :]).expanduser().exists():
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    Path(location).mkdir(parents=True, exist_ok=True)
    SqlAlchemyStore(tracking_uri, location)


def log_detector(
    detector_dir: str | Path,
    *,
    artifact_path: str = "model",
    registered_model_name: str = REGISTERED_MODEL,
    tags: dict[str, str] | None = None,
) -> ModelVersionRef:
    """Log ``detector_dir`` to the active MLflow run and register it as a new model version.

    The version is tagged with the detector ``kind`` (read from its ``meta.json``) and ``tags``.
    Raises ``RuntimeError`` when no run is active (a version must point at a run's artifacts).
    """
    import mlflow

    from anomaly_pipeline.detectors.base import read_kind

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_detector needs an active MLflow run (mlflow.start_run)")
    tracking_uri = mlflow.get_tracking_uri()
    source = log_detector_files(tracking_uri, run.info.run_id, detector_dir, artifact_path)
    return register_detector(
        tracking_uri,
        source,
        run.info.run_id,
        kind=read_kind(Path(detector_dir)),
        name=registered_model_name,
        tags=tags,
    )


def log_detector_files(
    tracking_uri: str, run_id: str, detector_dir: str | Path, artifact_path: str = "model"
) -> str:
    """Upload ``detector_dir`` into run ``run_id``'s artifacts; return their URI.

    Goes through the client, not the fluent API, so the run's status is left alone: a training
    process that logs into the Dagster run's MLflow run must not mark it FINISHED.
    """
    from mlflow.tracking.artifact_utils import get_artifact_uri

    _client(tracking_uri).log_artifacts(run_id, str(detector_dir), artifact_path)
    return get_artifact_uri(run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri)


@dataclass(frozen=True)
class PublishedBundle:
    """Where ``publish_bundle`` put a model: the local bundle, its copy in the MLflow run's
    artifacts, and the registered version when one was asked for."""

    model_dir: Path
    artifact_uri: str
    version: ModelVersionRef | None


def publish_bundle(
    detector: Detector,
    model_dir: Path,
    train: pl.DataFrame,
    categories: dict[str, list[str]] | None,
    *,
    tracking_uri: str,
    run_id: str,
    register_as: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> PublishedBundle:
    """The one way a fitted detector of any kind becomes a model.

    Its scoring bundle is written atomically into ``model_dir`` (``bundle.write_bundle``; without
    ``categories`` the bare detector, for a training run outside the pipeline), logged
    to MLflow run ``run_id`` under ``models/<kind>`` (kinds of one run never collide), and — with
    ``register_as`` — registered as a version carrying ``tags``. The training assets leave
    ``register_as`` None: ``model_evaluation`` registers the candidates once every training of
    the run has succeeded, so a failed run leaves the registry untouched.
    """
    from anomaly_pipeline.bundle import write_bundle

    model_dir = write_bundle(detector, model_dir, train, categories)
    source = log_detector_files(tracking_uri, run_id, model_dir, f"models/{detector.kind}")
    version = None
    if register_as is not None:
        version = register_detector(
            tracking_uri,
            source,
            run_id,
            kind=detector.kind,
            name=register_as,
            tags=dict(tags or {}),
        )
    return PublishedBundle(model_dir=model_dir, artifact_uri=source, version=version)


def register_detector(
    tracking_uri: str,
    source: str,
    run_id: str,
    *,
    kind: str,
    name: str = REGISTERED_MODEL,
    tags: dict[str, str] | None = None,
) -> ModelVersionRef:
    """Register logged detector files (``source``) as a version of ``name`` — once.

    Idempotent: when run ``run_id`` already registered ``source``, that version is returned, so a
    re-executed registration step never leaves twin versions.
    """
    client = _client(tracking_uri)
    _ensure_registered_model(client, name)
    for existing in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        if existing.source == source:
            return _ref(existing)
    return _ref(
        client.create_model_version(
            name, source=source, run_id=run_id, tags={**(tags or {}), KIND_TAG: kind}
        )
    )


def kill_runs_of(tracking_uri: str, dagster_run_id: str) -> list[str]:
    """End the MLflow runs of a dead Dagster run that still say RUNNING as KILLED; their ids.

    A killed process cannot end its MLflow run, which would otherwise show RUNNING (or, when an
    earlier step had ended it, FINISHED) for ever.
    """
    from mlflow.entities import RunStatus, ViewType

    client = _client(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    killed = []
    for run in client.search_runs(
        experiments,
        filter_string=f"tags.{DAGSTER_RUN_TAG} = '{dagster_run_id}' "
        f"and attributes.status = 'RUNNING'",
        run_view_type=ViewType.ALL,
    ):
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED))
        killed.append(run.info.run_id)
    return killed


def load_detector_version(
    tracking_uri: str, version: int | str, name: str = REGISTERED_MODEL
) -> Detector:
    """Download version ``version`` of ``name`` and load it with the detector registry."""
    import mlflow

    from anomaly_pipeline.detectors.registry import load_detector

    client = _client(tracking_uri)
    source = client.get_model_version_download_uri(name, str(version))
    with tempfile.TemporaryDirectory(prefix="anomaly-model-") as scratch:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=scratch, tracking_uri=tracking_uri
        )
        return load_detector(local)


def champion_bundle_dir(
    tracking_uri: str, cache_dir: str | Path, name: str = REGISTERED_MODEL
) -> Champion | None:
    """The champion and a local copy of its directory under ``cache_dir``, or None
    (``DataHome.champion`` calls it with the data home's registry and cache).

    Versions are immutable, so a copy is downloaded once per version (into a staging directory
    renamed into place, so a concurrent reader never sees a partial copy) and reused afterwards.
    """
    import mlflow

    champion = get_champion(tracking_uri, name)
    if champion is None:
        return None
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{name}-v{champion.version}"
    if not target.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=cache_dir) as scratch:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=_client(tracking_uri).get_model_version_download_uri(
                    name, str(champion.version)
                ),
                dst_path=scratch,
                tracking_uri=tracking_uri,
            )
            try:
                Path(local).rename(target)
            except OSError:
                if not target.is_dir():  # another process won the race: use its copy
                    raise
    return Champion(champion, target)


def get_champion(tracking_uri: str, name: str = REGISTERED_MODEL) -> ModelVersionRef | None:
    """The version carrying the ``champion`` alias, or None when there is none (yet)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        return _ref(client.get_model_version_by_alias(name, CHAMPION_ALIAS))
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_champion(
    tracking_uri: str, version: int | str, name: str = REGISTERED_MODEL
) -> ModelVersionRef:
    """Point the ``champion`` alias at ``version`` (moving it off the previous one)."""
    client = _client(tracking_uri)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    return _ref(client.get_model_version(name, str(version)))


def _client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create registered model ``name`` unless it exists (a concurrent creator is fine too)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _ref(version: ModelVersion | Any) -> ModelVersionRef:
    if version.run_id is None or version.source is None:
        raise ValueError(
            f"registered model {version.name} v{version.version} has no run or "
            "source; it was not registered by this pipeline"
        )
    return ModelVersionRef(
        name=version.name,
        version=int(version.version),
        run_id=version.run_id,
        kind=version.tags.get(KIND_TAG, ""),
        source_dir=version.source,
    )


#: MLflow's own tag for a run's display name.
RUN_NAME_TAG: Final[str] = "mlflow.runName"


def training_run_tags(
    job_name: str, days: Mapping[str, Sequence[str]], kinds: Sequence[str], gate_action: str
) -> dict[str, str]:
    """Name and tags of a training run's MLflow run, saying what ran: the job, the day range of
    the training window (train through holdout), the detector kinds and the gate's decision.

    Ad-hoc materialisations run in Dagster's hidden asset job (``__ASSET_JOB``): named "training".
    """
    all_days = sorted(day for split in days.values() for day in split)
    span = f"{all_days[0]}..{all_days[-1]}" if all_days else "no days"
    job = "training" if job_name.startswith("__") else job_name
    return {
        RUN_NAME_TAG: f"{job} {span} {'+'.join(kinds)}",
        "job": job,
        "days": span,
        "kinds": ",".join(kinds),
        "gate_action": gate_action,
    }


#: Model-version tags saying what the champion gate decided about each evaluated candidate.
GATE_ACTION_TAG: Final[str] = "gate_action"
GATE_OUTCOME_TAG: Final[str] = "gate_outcome"
GATE_REASON_TAG: Final[str] = "gate_reason"
#: MLflow's longest model-version tag value.
_TAG_LIMIT: Final[int] = 5000


def gate_tags(kind: str, *, action: str, promoted: str | None, reason: str) -> dict[str, str]:
    """Model-version tags of an evaluated candidate of ``kind``: the gate's action, whether this
    candidate was the one promoted, and the gate's reason."""
    return {
        GATE_ACTION_TAG: action,
        GATE_REASON_TAG: reason[:_TAG_LIMIT],
        GATE_OUTCOME_TAG: "promoted" if kind == promoted else "not promoted",
    }
