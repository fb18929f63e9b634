"""The code location served for real: dagster-webserver answers GraphQL with every asset,
sensor and schedule (what a data engineer sees in the UI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from served_ui import DagsterUi, free_port

pytestmark = pytest.mark.slow

QUERY = """{
  assetNodes { assetKey { path } groupName }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name } schedules { name cronSchedule } jobs { name } } } }
}"""
EXPECTED_ASSETS = {
    "raw_events",
    "quarantined_events",
    "event_labels",
    "stg_events",
    "int_sessions",
    "user_day_features",
    "behaviour_sequences",
    "training_set",
    "baseline_models",
    "anomaly_model",
    "model_evaluation",
    "champion_model",
    "daily_anomaly_scores",
    "anomaly_alerts",
    "feature_drift",
}


def test_webserver_serves_assets_sensors_and_schedule(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ANOMALY_PIPELINE_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    webserver = Path(sys.executable).parent / "dagster-webserver"
    process = subprocess.Popen(
        [str(webserver), "-m", "anomaly_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    ui = DagsterUi(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while not ui.answers():
            if process.poll() is not None:
                pytest.fail(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("webserver did not answer /server_info within 120 s")
            time.sleep(1)
        data = ui.graphql(QUERY)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assets = {node["assetKey"]["path"][-1]: node["groupName"] for node in data["assetNodes"]}
    assert set(assets) >= EXPECTED_ASSETS
    assert assets["raw_events"] == "ingest" and assets["user_day_features"] == "features"
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {s["name"] for s in repo["sensors"]} >= {
        "drift_retraining_sensor",
        "landing_zone_sensor",
        "run_failure_alert_sensor",
    }
    assert [s["name"] for s in repo["schedules"]] == ["daily_scoring_schedule"]
    assert {j["name"] for j in repo["jobs"]} >= {
        "ingest_features_job",
        "training_job",
        "scoring_job",
        "daily_job",
    }
