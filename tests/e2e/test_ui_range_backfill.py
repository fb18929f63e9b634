"""A partition range launched from the UI is ONE run over the whole range.

The UI's Materialize dialog sends a range of several assets as a backfill
(``launchPartitionBackfill``); the daemon, not the webserver, turns it into runs. The day-level
assets all have a single-run backfill policy, so a range must become one run tagged with the
range — not one run per day, which would queue a year of runs on the DuckDB pool. Driven through
a real ``dagster dev`` (webserver, daemon, code server) with the mutation the UI sends; no
timings are asserted (benchmarks/bench_range_start.py times this path).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from bench_range_start import (
    FIRST_DAY,
    day_level_assets,
    instance_home,
    launch_range_backfill,
)
from served_ui import dagster_dev

from anomaly_pipeline.instance import open_instance

pytestmark = pytest.mark.slow

DAYS = 3
#: The daemon's backfill loop runs every 30 s; its first pass after the launch creates the run.
DAEMON_WAIT_S = 120


def test_ui_range_backfill_creates_one_run_over_the_range(tmp_path: Path) -> None:
    import dagster as dg

    home = instance_home(tmp_path, dagster_event_log=False)
    with dagster_dev(home.env, tmp_path / "dagster_dev.log") as ui:
        selected = {tuple(key["path"]) for key in day_level_assets(ui)}
        backfill_id, _ = launch_range_backfill(ui, FIRST_DAY, DAYS)
        with open_instance(home.root / "dagster") as instance:
            deadline = time.monotonic() + DAEMON_WAIT_S
            while True:
                backfill = instance.get_backfill(backfill_id)
                assert backfill is not None and backfill.asset_backfill_data is not None
                data = backfill.asset_backfill_data
                # everything the backfill targets is requested: no further run will be created
                if data.requested_subset == data.target_subset:
                    break
                assert time.monotonic() < deadline, f"backfill {backfill_id} requested nothing"
                time.sleep(0.5)
            runs = instance.get_runs(filters=dg.RunsFilter.for_backfill(backfill_id))

    assert len(runs) == 1
    (run,) = runs
    assert run.tags["dagster/asset_partition_range_start"] == FIRST_DAY.isoformat()
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    assert run.tags["dagster/asset_partition_range_end"] == last.isoformat()
    assert {tuple(key.path) for key in run.asset_selection or ()} == selected
    # the backfill targets the selected assets over the range, every one of them daily
    assert {tuple(key.path) for key in data.target_subset.asset_keys} == selected
    assert data.target_subset.num_partitions_and_non_partitioned_assets == len(selected) * DAYS
