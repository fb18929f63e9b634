"""The Dagster UI served for real, as ``make dev`` serves it: ``dagster dev`` (webserver, daemon and
one code server) over a data home, on a free port, stopped as Ctrl-C stops it.

Why ``dagster dev`` and not the webserver alone: a partition range launched from the UI is a
backfill, and only the daemon turns a backfill into runs (its backfill loop) and starts them (the
queued run coordinator's loop). Shared by benchmarks/bench_range_start.py and the tests that send
the UI's GraphQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_ports import free_port
from pipeline_runs import DAGSTER, REPO_ROOT

#: The daemons a range launched from the UI goes through: the backfill loop creates the run, the
#: queued run coordinator's loop launches it.
RANGE_DAEMONS = frozenset({"BACKFILL", "QUEUED_RUN_COORDINATOR"})

_WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
_DAEMONS_QUERY = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"""


@dataclass(frozen=True)
class DagsterUi:
    """A served Dagster UI: its address, and its GraphQL endpoint as the browser calls it."""

    url: str

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST ``query`` to ``/graphql``; its ``data``, or an error naming GraphQL's errors."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        data: dict[str, Any] = answer["data"]
        return data

    def answers(self) -> bool:
        """True once the webserver answers ``/server_info``."""
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def location_loaded(self) -> bool:
        """True once every code location is loaded; a location that failed to load raises."""
        data = self.graphql(_WORKSPACE_QUERY)["workspaceOrError"]
        if data["__typename"] != "Workspace":
            return False
        entries = data["locationEntries"]
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {entry['name']}: {loaded['message']}")
        return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)

    def daemons_healthy(self, daemons: frozenset[str]) -> bool:
        """True once each of ``daemons`` has sent a heartbeat the instance counts as healthy."""
        statuses = self.graphql(_DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {status["daemonType"] for status in statuses if status["healthy"]}
        return daemons <= healthy


@contextmanager
def dagster_dev(
    env: Mapping[str, str],
    log: Path,
    *,
    daemons: frozenset[str] = RANGE_DAEMONS,
    timeout_s: float = 300,
) -> Iterator[DagsterUi]:
    """``dagster dev`` over the project's workspace with ``env``, output to ``log``; yields once
    the code location is loaded and ``daemons`` are healthy (a UI ready to launch ranges).

    As ``make dev``: the venv's bin on PATH and the data home's warehouse in the dbt profile's
    variable, which loading the code location under ``dagster dev`` needs (it re-parses the dbt
    project). It runs in its own session with SIGINT's default handler, so a SIGINT to its
    process group — what Ctrl-C in a terminal sends — stops the webserver, the daemon and the
    code server cleanly.
    """
    from anomaly_pipeline.defs.features.dbt import WAREHOUSE_ENV
    from anomaly_pipeline.paths import HOME_ENV, DataHome

    ui = DagsterUi(f"http://127.0.0.1:{free_port()}")
    port = ui.url.rsplit(":", 1)[1]
    command = [DAGSTER, "dev", "-h", "127.0.0.1", "-p", port, "-w", "workspace.yaml"]
    dev_env = {
        **env,
        "PATH": f"{Path(DAGSTER).parent}{os.pathsep}{env.get('PATH', '')}",
        WAREHOUSE_ENV: str(DataHome(Path(env[HOME_ENV])).warehouse),
    }
    with open(log, "a", encoding="utf-8") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dev_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        for ready in (ui.answers, ui.location_loaded, lambda: ui.daemons_healthy(daemons)):
            while not ready():
                if process.poll() is not None:
                    raise RuntimeError(f"dagster dev exited ({process.returncode}); see {log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"dagster dev not ready within {timeout_s:.0f} s; see {log}")
                time.sleep(0.5)
        yield ui
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the process group ``process`` leads; SIGKILL to it if it is not gone in 30 s."""
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()
