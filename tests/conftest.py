"""Shared fixtures: a simulated data directory taken through the real pipeline once per session.

Tests that need features, a trained champion or a populated Dagster instance build on
``ingested_pipeline`` / ``trained_pipeline`` instead of re-running dbt and training each time
(each dbt invocation costs seconds on the 2-core CI machine).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from local_ports import free_port as free_port  # re-exported: tests import it from here

# Demo mode supplies the documented pseudonym key to the dbt subprocesses of the pipeline tests;
# privacy tests that need a real key set their own.
os.environ.setdefault("ANOMALY_PIPELINE_DEMO", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: The simulated window of the session pipeline: enough days for train / validation / holdout.
PIPELINE_START = date(2026, 10, 1)
PIPELINE_DAYS = 7
PIPELINE_USERS = 400


@dataclass
class Pipeline:
    """A data directory, its Dagster instance and the resources that point at it."""

    root: Path
    days: list[date]
    instance: Any
    resources: dict[str, Any]
    simulation: Any
    #: report.md of the session's first training run (set by ``trained_pipeline``).
    evaluation_report: Path | None = None

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def range_tags(self, days: list[date] | None = None) -> dict[str, str]:
        days = days or self.days
        return {
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        }


def pipeline_resources(root: Path) -> dict[str, Any]:
    """The code location's resources, every one pointed at ``root``."""
    import dagster as dg

    from anomaly_pipeline.defs.features.dbt import dbt_resource
    from anomaly_pipeline.defs.resources import (
        AlertWebhookResource,
        WarehouseResource,
        mlflow_tracking,
    )

    return {
        "warehouse": WarehouseResource(home=str(root)),
        "dbt": dbt_resource(),
        "mlflow": mlflow_tracking.configured({"home": str(root)}),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
        "alert_webhook": AlertWebhookResource(),
        "io_manager": dg.FilesystemIOManager(base_dir=str(root / "dagster_storage")),
    }


def all_definitions() -> list[Any]:
    """Assets and asset checks of the code location (what `materialize` needs)."""
    from anomaly_pipeline.definitions import defs

    return [*defs.assets, *defs.asset_checks]


def materialize(
    pipeline: Pipeline,
    selection: Any,
    *,
    tags: dict[str, str] | None = None,
    partition_key: str | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
) -> Any:
    import dagster as dg

    return dg.materialize(
        all_definitions(),
        selection=selection,
        instance=pipeline.instance,
        resources=pipeline.resources,
        tags=tags,
        partition_key=partition_key,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def failure_sensor_context(instance: Any, run: Any, webhook_url: str = "") -> Any:
    """The context the daemon would give run_failure_alert_sensor, from the run's RUN_FAILURE
    event in the event log."""
    import dagster as dg

    from anomaly_pipeline.defs.monitoring.automation import run_failure_alert_sensor
    from anomaly_pipeline.defs.resources import AlertWebhookResource

    records = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    (failure,) = [r.event_log_entry.dagster_event for r in records.records]
    return dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alert_webhook": AlertWebhookResource(url=webhook_url, retries=0)},
    ).for_run_failure()


#: Training settings small enough for CI: baselines, the autoencoder and the sequence model.
FAST_TRAINING = {
    "training_set": {
        "config": {"window_days": PIPELINE_DAYS, "validation_days": 1, "holdout_days": 2}
    },
    "anomaly_model": {"config": {"max_epochs": 3, "batch_size": 256, "devices": 1}},
}


@pytest.fixture(scope="session")
def ingested_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """Seven simulated days through ingest, dbt features and sequences (one single-run backfill)."""
    import dagster as dg

    from anomaly_pipeline.defs.jobs import INGEST_FEATURES
    from anomaly_pipeline.paths import data_home
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    root = tmp_path_factory.mktemp("pipeline")
    home = data_home(root).ensure()
    simulation = simulate(
        SimulationConfig(
            start_day=PIPELINE_START,
            n_days=PIPELINE_DAYS,
            n_users=PIPELINE_USERS,
            seed=11,
            anomaly_share=0.05,
        )
    )
    write_landing(simulation, home.landing_events, home.landing_labels)
    days = [PIPELINE_START + timedelta(days=i) for i in range(PIPELINE_DAYS)]
    with dg.DagsterInstance.local_temp(str(home.dagster_home)) as instance:
        pipeline = Pipeline(
            root=root,
            days=days,
            instance=instance,
            resources=pipeline_resources(root),
            simulation=simulation,
        )
        materialize(pipeline, INGEST_FEATURES, tags=pipeline.range_tags())
        yield pipeline


@pytest.fixture
def bare_home(tmp_path: Path) -> Pipeline:
    """An empty data directory with its own ephemeral instance (no dbt run needed)."""
    import dagster as dg

    from anomaly_pipeline.paths import data_home

    home = data_home(tmp_path / "home").ensure()
    return Pipeline(
        root=home.root,
        days=[],
        instance=dg.DagsterInstance.ephemeral(),
        resources=pipeline_resources(home.root),
        simulation=None,
    )


@pytest.fixture(scope="session")
def trained_pipeline(ingested_pipeline: Pipeline) -> Pipeline:
    """The ingested pipeline with a trained, evaluated and promoted champion."""
    from anomaly_pipeline.defs.jobs import TRAINING

    result = materialize(ingested_pipeline, TRAINING, run_config={"ops": FAST_TRAINING})
    (evaluation,) = result.asset_materializations_for_node("model_evaluation")
    ingested_pipeline.evaluation_report = Path(evaluation.metadata["report_path"].value)
    return ingested_pipeline


class _WebhookCollector(BaseHTTPRequestHandler):
    """Records every JSON body POSTed to it (a stand-in alert receiver on 127.0.0.1)."""

    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP server on 127.0.0.1 (free port), stopped after the test: (url, bodies)."""
    _WebhookCollector.received = []
    server = HTTPServer(("127.0.0.1", 0), _WebhookCollector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", _WebhookCollector.received
    finally:
        server.shutdown()
        server.server_close()
