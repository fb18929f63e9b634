"""Resources: where the data lives (one data directory), DuckDB writes, MLflow, the alert webhook;
and ``resources()``, the code location's bindings of them."""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, cast

import dagster as dg
import polars as pl
from pydantic import ConfigDict, Field, field_validator

from anomaly_pipeline import warehouse
from anomaly_pipeline.alerts import WEBHOOK_ENV, check_webhook_url
from anomaly_pipeline.paths import DataHome, data_home

#: Concurrency pool of every step that opens the DuckDB file, readers included: DuckDB allows one
#: writing process per file and a reading process blocks a writer (see ``warehouse``), so steps
#: queue instead of failing on the lock (limit 1, resources/dagster.yaml).
WAREHOUSE_POOL = "duckdb_warehouse"
#: Training runs saturate the machine's cores (torchrun); one at a time.
TRAINING_POOL = "model_training"


class WarehouseResource(dg.ConfigurableResource):
    """The data directory and its DuckDB file.

    ``home`` defaults to ``$ANOMALY_PIPELINE_HOME`` (then ``./.anomaly_pipeline``); setting it in
    run config points one run at another data directory.
    """

    home: str | None = None

    @property
    def data_home(self) -> DataHome:
        return data_home(self.home).ensure()

    @property
    def path(self) -> Path:
        return self.data_home.warehouse

    def replace_partitions(self, table: str, frame: pl.DataFrame, days: list[date]) -> int:
        return warehouse.replace_partitions(self.path, table, frame, days)

    def read_days(
        self, table: str, days: Sequence[date], columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        return warehouse.read_days(self.path, table, days, columns=columns)

    def count_by_day(self, table: str, days: list[date]) -> dict[date, int]:
        return warehouse.count_by_day(self.path, table, days)


class AlertWebhookResource(dg.ConfigurableResource):
    """Optional HTTP endpoint that receives each day's new alerts as JSON (off when url is empty).

    The URL is checked when the resource is built (http or https, in any case), so a wrong one
    fails at code-location load or run start, not at the first alert. It may hold a token: it is
    kept out of the resource's repr and out of validation errors (pydantic would quote it).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(default="", repr=False)
    timeout_s: float = 5.0
    retries: int = 2

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url:
            check_webhook_url(url)
        return url

    @property
    def enabled(self) -> bool:
        return bool(self.url)


@dg.resource(
    config_schema={
        "experiment_name": dg.Field(str, default_value="anomaly_pipeline"),
        "home": dg.Field(dg.Noneable(str), default_value=None),
    }
)
def mlflow_tracking(init_context: dg.InitResourceContext) -> Any:
    """dagster-mlflow's ``mlflow_tracking``, imported lazily and pointed at the data directory.

    Why a wrapper: importing ``dagster_mlflow`` imports mlflow (seconds), which every step of every
    run would pay if it happened at code-location load; and the experiment must be created with an
    artifact location inside the data directory before dagster-mlflow's ``set_experiment`` would
    create it with MLflow's cwd-relative default. One Dagster run maps to one MLflow run (the
    resource finds the run by its ``dagster_run_id`` tag); assets end it themselves because
    dagster-mlflow's run-finished hook does not fit asset backfills (dagster #21872).
    """
    from dagster_mlflow import mlflow_tracking as dagster_mlflow_tracking

    from anomaly_pipeline.model_registry import ensure_experiment

    home = data_home(init_context.resource_config["home"]).ensure()
    name = init_context.resource_config["experiment_name"]
    ensure_experiment(home.mlflow_tracking_uri, name, home.mlflow_artifacts.as_uri())
    config = {
        "experiment_name": name,
        "mlflow_tracking_uri": home.mlflow_tracking_uri,
        "parent_run_id": None,
        "mlflow_run_id": None,
        "env": {},
        "env_to_tag": None,
        "extra_tags": {},
    }
    # Dagster types resource_fn as either a zero- or a one-argument function; this one takes the
    # init context, for which dagster-mlflow only reads the attributes _MlflowInitContext has.
    resource_fn = cast(Callable[[Any], Any], dagster_mlflow_tracking.resource_fn)
    return resource_fn(_MlflowInitContext(init_context, config))


class _MlflowInitContext:
    """The init context dagster-mlflow expects: our run and logger, its own config."""

    def __init__(self, ours: dg.InitResourceContext, config: dict[str, Any]) -> None:
        self.log = ours.log
        self.dagster_run = ours.dagster_run
        self.run_id = ours.run_id
        self.resource_config = config


#: Where `make mlflow-ui` serves the MLflow UI; run links in asset metadata point there.
MLFLOW_UI = "http://127.0.0.1:5000"


def mlflow_run_link(mlflow_resource: Any, run_id: str) -> dg.MetadataValue:
    """A link to the run in the MLflow UI (``make mlflow-ui``)."""
    experiment_id = mlflow_resource.experiment.experiment_id
    return dg.MetadataValue.url(f"{MLFLOW_UI}/#/experiments/{experiment_id}/runs/{run_id}")


@contextmanager
def active_mlflow_run(mlflow_resource: Any) -> Iterator[str]:
    """Make the Dagster run's MLflow run active for one asset body, and end it afterwards.

    dagster-mlflow resumes the run when a step initialises the resource; with the in-process
    executor a second asset reuses the resource after the first ended the run, so every asset
    re-activates it here rather than letting MLflow silently start a new run.
    """
    import mlflow

    active = mlflow.active_run()
    run_id = mlflow_resource.mlflow_run_id or (active.info.run_id if active else None)
    if run_id is None:  # the resource's run was ended by an earlier asset of this process
        found = mlflow.search_runs(
            experiment_ids=[mlflow_resource.experiment.experiment_id],
            filter_string=f"tags.dagster_run_id = '{mlflow_resource.dagster_run_id}'",
            output_format="list",
        )
        run_id = (
            found[0].info.run_id
            if found
            else mlflow.start_run(
                run_name=mlflow_resource.run_name,
                tags={"dagster_run_id": mlflow_resource.dagster_run_id},
            ).info.run_id
        )
        active = mlflow.active_run()
    # dagster-mlflow leaves mlflow_run_id unset when it started the run itself.
    mlflow_resource.mlflow_run_id = run_id
    if active is None or active.info.run_id != run_id:
        if active is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=run_id)
    try:
        yield run_id
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()


@dg.definitions
def resources() -> dg.Definitions:
    """Every resource key the assets, checks and sensors ask for, bound for the code location.

    A function rather than a module-level Definitions: the dbt resource comes from the features
    stage, which imports this module (for the pool and WarehouseResource).
    """
    from anomaly_pipeline.defs.features.dbt import dbt_resource

    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(),
            "dbt": dbt_resource(),
            "mlflow": mlflow_tracking,
            "pipes_subprocess_client": dg.PipesSubprocessClient(),
            "alert_webhook": AlertWebhookResource(url=os.environ.get(WEBHOOK_ENV, "")),
            "io_manager": dg.FilesystemIOManager(
                base_dir=str(data_home().root / "dagster_storage")
            ),
        }
    )
