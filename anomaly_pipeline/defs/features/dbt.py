"""The dbt project as Dagster assets: one asset per model, dbt's data tests as asset checks.

Built from dbt's manifest (anomaly_pipeline/dbt_manifest.py) and run as one ``dbt build`` per step
(anomaly_pipeline/dbt_cli.py), not through dagster-dbt: its ``@dbt_assets`` imports dbt-core's
artifact classes wherever the code location loads, and so does Dagster's component discovery
whenever dagster-dbt is merely installed (≈1.5 s of a 2.7–3.3 s load, in every run process and
the webserver); it also starts an adapter and a ``dbt --version`` before each build. The asset
keys are the bare model and source table names, so a source's tests are checks of the ingest
asset that writes the table.
"""

import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
from pydantic import Field

from anomaly_pipeline.dbt_cli import DbtCommand, NodeResult, run_dbt
from anomaly_pipeline.dbt_manifest import (
    DbtManifest,
    DbtModel,
    DbtNode,
    DbtTest,
    manifest_is_stale,
)
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
DBT_MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"
#: Each build's artifacts and dbt.log, in a folder of its own (kept when the build fails).
DBT_RUNS_DIR = DBT_PROJECT_DIR / "target" / "runs"
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


class DbtResource(dg.ConfigurableResource):
    """Where the dbt project, its profiles and the dbt executable are."""

    project_dir: str = str(DBT_PROJECT_DIR)
    profiles_dir: str = str(DBT_PROFILES_DIR)
    executable: str = DBT_EXECUTABLE

    def run(self, args: list[str], *, target_path: Path, env: Mapping[str, str]) -> DbtCommand:
        return run_dbt(
            self.executable,
            args,
            project_dir=Path(self.project_dir),
            profiles_dir=Path(self.profiles_dir),
            target_path=target_path,
            env=env,
        )


def dbt_resource() -> DbtResource:
    return DbtResource()


def _parse_if_dev() -> None:
    """`dagster dev` re-parses the project when a model changed, so edits show up (`make dev` puts
    the venv's dbt on PATH and sets WAREHOUSE_ENV for it). Every process `dagster dev` starts
    inherits its flag, run workers included: they find the manifest fresh and parse nothing.
    Everywhere else the manifest is built ahead (`make install`), so loading the code location
    neither runs dbt nor changes os.environ."""
    if not os.environ.get("DAGSTER_IS_DEV_CLI"):
        return
    if not manifest_is_stale(DBT_PROJECT_DIR, DBT_MANIFEST_PATH):
        return
    parsed = dbt_resource().run(["parse", "--quiet"], target_path=DBT_MANIFEST_PATH.parent, env={})
    if not parsed.succeeded:
        raise RuntimeError(parsed.error_summary())


_parse_if_dev()
MANIFEST = DbtManifest.read(DBT_MANIFEST_PATH)
MODELS = {model.unique_id: model for model in MANIFEST.models}
TESTS = {test.unique_id: test for test in MANIFEST.tests}


def _asset_spec(model: DbtModel) -> dg.AssetSpec:
    columns = dg.TableSchema(
        columns=[
            dg.TableColumn(name=c.name, type=c.data_type or "?", description=c.description)
            for c in model.columns
        ]
    )
    return dg.AssetSpec(
        key=model.name,
        deps=model.parents,
        group_name="features",
        description=f"{model.description}\n\n#### Raw SQL:\n```sql\n{model.raw_code}\n```",
        kinds={"dbt", dbt_target()},
        code_version=model.code_version,
        # A model dbt skips (an upstream model or blocking test failed) is not materialized; the
        # step then fails with dbt's error.
        skippable=True,
        metadata={
            "dagster/table_name": model.relation,
            "dagster/column_schema": dg.MetadataValue.table_schema(columns),
            "dbt/unique_id": model.unique_id,
            "dbt/materialized": model.materialized,
        },
    )


def _check_spec(test: DbtTest) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name=test.name,
        asset=test.attached_to,
        additional_deps=test.other_parents,
        blocking=test.blocking,
        metadata={"dbt/unique_id": test.unique_id},
    )


def _check_key(test: DbtTest) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(test.attached_to), test.name)


def selection_args(
    selected_assets: set[dg.AssetKey], selected_checks: set[dg.AssetCheckKey]
) -> list[str]:
    """dbt's selection for the step's subset: nothing when every model and test is selected, else
    each selected node by its exact fqn, and no test dbt would add on its own (a test whose check
    is not selected must not run: it could fail a step that did not ask for it)."""
    models: list[DbtNode] = [m for m in MANIFEST.models if dg.AssetKey(m.name) in selected_assets]
    tests: list[DbtNode] = [t for t in MANIFEST.tests if _check_key(t) in selected_checks]
    if len(models) == len(MANIFEST.models) and len(tests) == len(MANIFEST.tests):
        return []
    fqns = [f"fqn:{'.'.join(node.fqn)}" for node in models + tests]
    return ["--select", *fqns, "--indirect-selection", "empty"]


class DbtFeaturesConfig(dg.Config):
    source_timezone: str | None = Field(
        default=None,
        description="IANA timezone of the "
        "source's local time for time-of-day features (e.g. "
        "Asia/Shanghai); default: the data home's source.json "
        "(written by onboarding), else UTC.",
    )


@dg.multi_asset(
    name="dbt_feature_models",
    specs=[_asset_spec(model) for model in MANIFEST.models],
    # dbt's source tests (not-null / accepted values on raw_events and event_labels) are checks of
    # those ingest assets, run by this step: multi_asset's (hidden, kept) flag for checks of assets
    # it does not materialize, as dagster-dbt's @dbt_assets sets it for the same purpose.
    check_specs=[_check_spec(test) for test in MANIFEST.tests],
    allow_arbitrary_check_specs=True,
    can_subset=True,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    pool=WAREHOUSE_POOL,
)
def dbt_feature_models(
    context: dg.AssetExecutionContext,
    dbt: DbtResource,
    warehouse: WarehouseResource,
    config: DbtFeaturesConfig,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """`dbt build` of the selected models and tests for the run's day range (one invocation per
    range), with time-of-day features in the source's timezone (config, else the data home's
    source.json, else UTC)."""
    from anomaly_pipeline.source_settings import SourceSettings, read_source_settings

    days = partition_days(context)
    env = {WAREHOUSE_ENV: str(warehouse.path)}
    if dbt_target() == "spark":  # a local session keeps its tables in the data directory
        env[SPARK_DIR_ENV] = os.environ.get(SPARK_DIR_ENV, str(warehouse.data_home.root / "spark"))
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
    args = [
        *DBT_BUILD,
        "--vars",
        json.dumps(dbt_vars),
        *selection_args(set(context.selected_asset_keys), set(context.selected_asset_check_keys)),
    ]
    target_path = DBT_RUNS_DIR / f"{context.run_id[:8]}-{uuid.uuid4().hex[:8]}"
    command = dbt.run(args, target_path=target_path, env=env)
    # In dbt's order of completion: a model after the models it reads (Dagster's order for a
    # multi-asset), a test after the model it tests. dbt holds the DuckDB file until it exits, so
    # each model's rows per day are counted after the build and attached before its
    # materialization; a failed build still reports the models and tests it finished, then fails
    # the step.
    for result in command.results:
        if result.unique_id in MODELS and result.status == "success":
            model = MODELS[result.unique_id]
            if dbt_target() == "duckdb":  # on Spark the relations live in Spark's warehouse
                counts = warehouse.count_by_day(model.relation, days)
                per_day = {day: {"dagster/row_count": n} for day, n in counts.items()}
                add_metadata_per_day(context, per_day, model.name)
            yield dg.MaterializeResult(
                asset_key=model.name,
                metadata={"dbt/execution_time_s": round(result.execution_time_s, 2)},
            )
        elif result.unique_id in TESTS and result.status != "skipped":
            yield _check_result(TESTS[result.unique_id], result)
    if not command.succeeded:
        raise dg.Failure(description=command.error_summary())
    shutil.rmtree(target_path, ignore_errors=True)


def _check_result(test: DbtTest, result: NodeResult) -> dg.AssetCheckResult:
    """A test dbt ran (one it skipped, below a failure, has none): passed, or failed (``warn``:
    a warning) with the rows it found."""
    return dg.AssetCheckResult(
        asset_key=test.attached_to,
        check_name=test.name,
        passed=result.status == "pass",
        severity=dg.AssetCheckSeverity.WARN
        if result.status == "warn"
        else dg.AssetCheckSeverity.ERROR,
        metadata={
            "dbt/status": result.status,
            "dbt/execution_time_s": round(result.execution_time_s, 2),
            **({} if result.failures is None else {"failing_rows": result.failures}),
        },
        description=None if result.status == "pass" else result.message,
    )
