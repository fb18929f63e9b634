"""Benchmark of an on-call backfill: 30 days through ingest, features and scoring, then 5 re-run.

On a fresh data home a champion is trained first (7 simulated days, baselines only; not timed).
Then ``--days`` days (default 30) of ``--events`` events each (default 200,000, the feature
benchmark's Taobao-replicating generator) are landed, and the range goes through the two
single-run backfills an operator launches (README, "On call"): ``ingest_features_job`` over the
whole range as one run, then ``scoring_job`` (scores, alerts, drift) over it as one run, each the
``dagster`` CLI process. Then 5 days in the middle of the range are re-run the same way.

Figures: ``total_s`` both backfills' wall time, ``rerun5_s`` the re-run's, ``peak_rss_gib`` the
largest summed RSS of a run's process tree (dbt subprocesses included), ``duplicates`` the rows
beyond one per key in every day-level table after the re-run (event id per day for raw events;
user per day for features, sequences and scores; feature per day for drift; alert id for
alerts) plus every per-day row count the re-run changed. The peer, measured in the same run on
the same landing files: ``duckdb_s`` one hand-written DuckDB query per day computing its
per-user-day features (``pipeline_runs.duckdb_peer``), summed over the range; ``vs_duckdb`` =
total_s / duckdb_s. The last line printed is (one line)::

    bench-backfill days=30 events=<n> total_s=<s> rerun5_s=<s> peak_rss_gib=<g> duplicates=<n>
    duckdb_s=<s> vs_duckdb=<x>

Targets: duplicates = 0, peak_rss_gib ≤ 4, total_s ≤ 600.

Run: ``python benchmarks/bench_backfill.py [--days 30] [--events 200000] [--workdir …]``.
"""

from __future__ import annotations

import argparse
import os
from datetime import date, timedelta
from pathlib import Path

import duckdb
from bench_features import make_events
from pipeline_runs import REPO_ROOT, TRAIN_DAYS, BenchHome, CliRun, duckdb_peer

FIRST_DAY = date(2024, 2, 1)
RERUN_DAYS = 5
#: Day-level table → the columns that identify one of its rows within the table.
KEYS = {
    "raw.raw_events": ("event_day", "event_id"),
    "features.user_day_features": ("event_day", "user_key"),
    "features.behaviour_sequences": ("event_day", "user_key"),
    "scoring.daily_anomaly_scores": ("event_day", "user_key"),
    "scoring.anomaly_alerts": ("alert_id",),
    "monitoring.feature_drift": ("event_day", "feature"),
}


def per_day_counts(home: BenchHome) -> dict[str, dict[date, int]]:
    with duckdb.connect(str(home.root / "warehouse.duckdb"), read_only=True) as con:
        return {
            table: dict(
                con.execute(f"select event_day, count(*) from {table} group by 1").fetchall()
            )
            for table in KEYS
        }


def duplicate_rows(home: BenchHome) -> int:
    """Rows beyond one per key, over every day-level table."""
    total = 0
    with duckdb.connect(str(home.root / "warehouse.duckdb"), read_only=True) as con:
        for table, key in KEYS.items():
            columns = ", ".join(key)
            row = con.execute(
                f"select count(*) - (select count(*) from (select distinct {columns} "
                f"from {table})) from {table}"
            ).fetchone()
            total += int(row[0]) if row else 0
    return total


def backfill(home: BenchHome, days: list[date]) -> tuple[float, float]:
    """Both single-run backfills over ``days``: (wall seconds, peak RSS GiB)."""
    runs: list[CliRun] = [home.run_job(job, days) for job in ("ingest_features_job", "scoring_job")]
    for job, run in zip(("ingest_features_job", "scoring_job"), runs, strict=True):
        print(
            f"  {job} {days[0]}…{days[-1]}: {run.wall_s:.1f} s, peak {run.describe_peak()} "
            f"during {home.step_at(run.run_id, run.peak_at)}"
        )
    return sum(r.wall_s for r in runs), max(r.peak_rss_gib for r in runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".bench" / "backfill")
    args = parser.parse_args(argv)

    home = BenchHome.fresh(
        args.workdir.resolve() / "home", start_day=FIRST_DAY - timedelta(days=TRAIN_DAYS)
    )
    home.train_champion(FIRST_DAY)
    days = [FIRST_DAY + timedelta(days=i) for i in range(args.days)]
    home.landing_events.mkdir(parents=True, exist_ok=True)
    landing_files = [home.landing_events / f"events_{day.isoformat()}.parquet" for day in days]
    for day, landing_file in zip(days, landing_files, strict=True):
        make_events(args.events, day=day).write_parquet(landing_file)
    print(f"backfill of {len(days)} days × {args.events} events")
    total_s, peak_first = backfill(home, days)
    before = per_day_counts(home)
    middle = len(days) // 2
    rerun = days[middle : middle + RERUN_DAYS]
    print(f"re-run of {len(rerun)} days")
    rerun_s, peak_rerun = backfill(home, rerun)
    after = per_day_counts(home)
    changed = sum(
        abs(after[table].get(day, 0) - before[table].get(day, 0))
        for table in KEYS
        for day in set(before[table]) | set(after[table])
    )
    peer = duckdb_peer(landing_files)
    print(f"peer: one DuckDB query a day, {peer.seconds:.1f} s, {peer.user_days} user-days")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"bench-backfill days={len(days)} events={args.events * len(days)} total_s={total_s:.1f} "
        f"rerun5_s={rerun_s:.1f} peak_rss_gib={max(peak_first, peak_rerun):.2f} "
        f"duplicates={duplicate_rows(home) + changed} "
        f"duckdb_s={peer.seconds:.1f} vs_duckdb={total_s / peer.seconds:.1f}"
    )


if __name__ == "__main__":
    main()
