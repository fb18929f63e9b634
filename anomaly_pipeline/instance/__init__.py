"""Dagster instance plugins, named by ``resources/dagster.yaml`` (not part of the code location).

Loaded by every process that opens the instance — the webserver, the daemon, the CLI and run
workers — so it imports Dagster and nothing of the pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg


def open_instance(dagster_home: str | Path) -> dg.DagsterInstance:
    """The Dagster instance of ``dagster_home`` as ``dagster`` commands open it there.

    ``DagsterInstance.from_config`` alone does not set ``DAGSTER_HOME``, which the project's
    ``dagster.yaml`` reads (``{env: DAGSTER_HOME}``: where the event log lives): it is set while
    the instance is built, then restored.
    """
    import dagster as dg

    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        return dg.DagsterInstance.from_config(str(dagster_home))
    finally:
        if before is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = before
