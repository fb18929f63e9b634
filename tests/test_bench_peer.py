"""The peer that ``make bench-day`` and ``make bench-backfill`` divide their times by: one
hand-written DuckDB query per landing file, on small generated days (the code path, not timed)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import polars as pl
from bench_features import make_events
from pipeline_runs import duckdb_peer

from anomaly_pipeline.privacy import DEMO_ENV


def test_duckdb_peer_finds_every_user_day_of_each_landing_file(tmp_path: Path) -> None:
    days = [date(2024, 2, 1), date(2024, 2, 2)]
    landing_files = []
    expected_user_days = 0
    for day in days:
        events = make_events(5_000, day=day)
        landing_file = tmp_path / f"events_{day.isoformat()}.parquet"
        events.write_parquet(landing_file)
        landing_files.append(landing_file)
        expected_user_days += events.select(pl.col("user_id").n_unique()).item()
    demo_before = os.environ.get(DEMO_ENV)

    peer = duckdb_peer(landing_files)

    # the two days share event ids ("tb-<row>"): per-file queries keep them apart
    assert peer.user_days == expected_user_days
    assert peer.seconds > 0
    assert os.environ.get(DEMO_ENV) == demo_before
