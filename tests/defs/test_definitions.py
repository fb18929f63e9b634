"""The code location as a whole: what every asset declares, and what loading it costs.

In the style of dagster-open-platform's test_defs: rules that hold for every asset, so a new asset
that forgets its group, description, kinds, backfill policy or pool fails here, not in production.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from anomaly_pipeline.defs.partitions import daily_partitions
from anomaly_pipeline.defs.resources import WAREHOUSE_POOL

STAGES = {"ingest", "features", "training", "evaluation", "scoring", "monitoring"}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from anomaly_pipeline.definitions import defs

    return defs


def test_every_asset_has_a_stage_group_a_description_and_kinds(defs):
    specs = defs.resolve_all_asset_specs()
    assert len(specs) >= 17
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name in STAGES, name
        assert spec.description and spec.description.strip(), name
        assert spec.kinds, name


def test_day_level_assets_backfill_in_one_run_and_queue_for_the_warehouse(defs):
    """Every day-partitioned asset writes the DuckDB file: one run per backfilled range (one dbt
    invocation, one writer), and in the warehouse pool so writers queue instead of failing."""
    day_level = [
        assets_def
        for assets_def in defs.resolve_asset_graph().assets_defs
        if assets_def.keys and assets_def.partitions_def is not None
    ]
    assert {key.to_user_string() for a in day_level for key in a.keys} >= {
        "raw_events",
        "event_labels",
        "stg_events",
        "user_day_features",
        "behaviour_sequences",
        "daily_anomaly_scores",
        "anomaly_alerts",
        "feature_drift",
    }
    for assets_def in day_level:
        names = sorted(key.to_user_string() for key in assets_def.keys)
        assert assets_def.partitions_def == daily_partitions, names
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run(), names
        assert assets_def.op.pool == WAREHOUSE_POOL, names


def test_the_code_location_is_loaded_from_the_defs_folder(defs):
    """Every job, sensor and schedule of the defs modules is found without a hand-written list,
    each once, and every resource key an asset asks for is bound."""
    assert sorted(job.name for job in defs.jobs) == [
        "daily_job",
        "ingest_features_job",
        "scoring_job",
        "training_job",
    ]
    assert sorted(sensor.name for sensor in defs.sensors) == [
        "drift_retraining_sensor",
        "landing_zone_sensor",
        "run_failure_alert_sensor",
    ]
    assert [schedule.name for schedule in defs.schedules] == ["daily_scoring_schedule"]
    required = {
        key
        for assets_def in defs.resolve_asset_graph().assets_defs
        for key in assets_def.required_resource_keys
    }
    assert required <= set(defs.resources)
    defs.validate_loadable(defs)


#: Run in a fresh interpreter: what importing the code location adds to sys.modules and changes in
#: os.environ. Third-party libraries it needs anyway are imported first: polars sets variables of
#: its own at import (jemalloc settings), which are not ours. Heavy: what only some steps need —
#: pandera (about 1 s with the pandas it imports) only where rows are validated; dbt-core (≈ 1.5 s)
#: nowhere, since dbt runs as a subprocess and dagster-dbt is not installed (Dagster's component
#: discovery imports every installed integration that registers components, dagster-dbt included).
_PROBE = """
import json, os, sys
import dagster, polars
before = dict(os.environ)
import anomaly_pipeline.definitions
after = dict(os.environ)
heavy = ("torch", "lightning", "pytorch_lightning", "mlflow", "sklearn", "dagster_mlflow", "dbt",
         "dagster_dbt", "pandera", "pandas")
print(json.dumps({
    "changed": sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)),
    "heavy": sorted(m for m in heavy if m in sys.modules),
}))
"""


def test_importing_the_code_location_changes_no_environment_and_stays_light(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "ANOMALY_PIPELINE_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    assert probe == {"changed": [], "heavy": []}


def test_the_package_imports_no_private_dagster_module() -> None:
    """Dagster's underscore modules change without notice between releases; the code location
    uses the public API only (``dagster``, ``dagster_mlflow``, ``dagster_celery`` ...). The instance
    plugins (``anomaly_pipeline/instance``) can only extend Dagster's storage classes; their own
    tests compare them with Dagster's, and the code location never imports them."""
    package = Path(__file__).resolve().parents[2] / "anomaly_pipeline"
    private = re.compile(r"^\s*(from|import)\s+dagster\w*\._", re.MULTILINE)
    plugin = re.compile(r"^\s*(from|import)\s+anomaly_pipeline\.instance\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.parent.name != "instance" and private.search(path.read_text(encoding="utf-8"))
    ]
    importers = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if plugin.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert importers == []
