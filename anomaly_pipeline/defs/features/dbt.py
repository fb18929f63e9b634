"""The dbt project as Dagster assets: one asset per model, dbt tests as asset checks."""

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from pydantic import Field

from anomaly_pipeline.dbt_spark import SPARK_DIR_ENV, dbt_target
from anomaly_pipeline.defs.partitions import (
    add_metadata_per_day,
    daily_partitions,
    partition_days,
    single_run_backfill,
)
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL, WarehouseResource
from anomaly_pipeline.paths import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_features"
DBT_PROFILES_DIR = REPO_ROOT / "resources" / "dbt"
#: The dbt profile reads the DuckDB path from this variable (set per step from the resource).
WAREHOUSE_ENV = "ANOMALY_PIPELINE_WAREHOUSE"
#: The dbt of this interpreter's environment (the venv's bin is not always on PATH); on the spark
#: target (ANOMALY_PIPELINE_DBT_TARGET=spark), dbt with its Spark session prepared
#: (anomaly_pipeline/dbt_spark.py).
DBT_EXECUTABLE = str(
    Path(sys.executable).parent / ("anomaly-pipeline-dbt" if dbt_target() == "spark" else "dbt")
)
#: The pipeline's dbt command. Unit tests (given/expect fixtures of the SQL logic, no warehouse
#: data) are left to `make test` and CI, as dbt advises for production builds: they check the
#: code, which does not change between partitions, and cost every run about 3 s.
DBT_BUILD = ("build", "--exclude-resource-type", "unit_test")


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROFILES_DIR)
# `dagster dev` re-parses so model edits show up (`make dev` puts the venv's dbt on PATH and sets
# WAREHOUSE_ENV for it); everywhere else the manifest is built ahead (`make install`), so loading
# the code location neither runs dbt nor changes os.environ.
dbt_project.prepare_if_dev()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project, profiles_dir=str(DBT_PROFILES_DIR), dbt_executable=DBT_EXECUTABLE
    )


class FeatureTranslator(DagsterDbtTranslator):
    """Asset keys: bare model or source-table names (`stg_events`, `raw_events`); group features."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "features"


class DbtFeaturesConfig(dg.Config):
    source_timezone: str | None = Field(
        default=None,
        description="IANA timezone of the "
        "source's local time for time-of-day features (e.g. "
        "Asia/Shanghai); default: the data home's source.json "
        "(written by onboarding), else UTC.",
    )


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    # dbt's source tests (not-null / accepted values on raw_events and event_labels) become
    # checks of those ingest assets instead of bare observations.
    dagster_dbt_translator=FeatureTranslator(
        settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True)
    ),
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def dbt_feature_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    config: DbtFeaturesConfig,
):
    """`dbt build` of the selected models for the run's day range (one invocation per range),
    with time-of-day features in the source's timezone (config, else the data home's
    source.json, else UTC)."""
    from dagster_dbt.errors import DagsterDbtCliRuntimeError

    from anomaly_pipeline.source_settings import SourceSettings, read_source_settings

    days = partition_days(context)
    os.environ[WAREHOUSE_ENV] = str(warehouse.path)
    if dbt_target() == "spark":  # a local session keeps its tables in the data directory
        os.environ.setdefault(SPARK_DIR_ENV, str(warehouse.data_home.root / "spark"))
    timezone = (
        SourceSettings(timezone=config.source_timezone).timezone
        if config.source_timezone
        else read_source_settings(warehouse.data_home).timezone
    )
    dbt_vars = {
        "start_day": days[0].isoformat(),
        "end_day": days[-1].isoformat(),
        "source_timezone": timezone,
    }
    # dbt holds the DuckDB file until it exits, so each model's rows per day are counted after the
    # build and attached before its events are released (a failed build still reports the models
    # it finished, then fails the step).
    events: list[Any] = []
    error: DagsterDbtCliRuntimeError | None = None
    try:
        events.extend(
            dbt.cli([*DBT_BUILD, "--vars", json.dumps(dbt_vars)], context=context).stream()
        )
    except DagsterDbtCliRuntimeError as err:
        error = err
    tables = _model_tables(dbt_project.manifest_path)
    for event in events:
        # On Spark the relations live in Spark's warehouse, not in the DuckDB file.
        if isinstance(event, dg.Output) and dbt_target() == "duckdb":
            key = context.assets_def.keys_by_output_name[event.output_name]
            counts = warehouse.count_by_day(tables[key.path[-1]], days)
            add_metadata_per_day(
                context, {day: {"dagster/row_count": n} for day, n in counts.items()}, key
            )
    yield from events
    if error is not None:
        raise error


def _model_tables(manifest_path: Path) -> dict[str, str]:
    """Model name → `schema.table` of its relation, as dbt's manifest resolves them."""
    nodes = json.loads(manifest_path.read_text())["nodes"].values()
    return {
        n["name"]: f"{n['schema']}.{n['alias']}" for n in nodes if n["resource_type"] == "model"
    }
