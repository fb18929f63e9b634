"""Benchmark of one whole day as an operator waits for it: daily_job end to end, then a re-run.

On a fresh data home a champion is trained first (7 simulated days, baselines only; not timed).
Then one day of ``--events`` events (default 10 M, the feature benchmark's Taobao-replicating
generator, ``bench_features.make_events``) is written as that day's landing file, and
``dagster job execute -j daily_job`` runs it — landing file → raw_events → dbt → contract checks
→ sequences → scores → alerts → drift — as the CLI process an operator starts (process start,
code location load and step start-up included). The same day is then re-run (every partition
replaced, nothing added).

Figures: ``total_s`` the first run's wall time, ``rerun_s`` the re-run's, ``work_s`` the sum of the
first run's steps' own times (STEP_START → STEP_SUCCESS in the event log), ``step_overhead_s`` =
total_s − work_s (process start, code location load, executor and step start-up, pool waits),
``peak_rss_gib`` the largest summed RSS of the run's process tree (dbt and torch subprocesses
included) over both runs. The peer, measured in the same run on the same landing file:
``duckdb_s`` one hand-written DuckDB query computing that day's per-user-day features
(``pipeline_runs.duckdb_peer``); ``vs_duckdb`` = total_s / duckdb_s, ``rerun_vs_duckdb`` =
rerun_s / duckdb_s. The last line printed is (one line)::

    bench-day events=<n> user_days=<n> total_s=<s> rerun_s=<s> step_overhead_s=<s> work_s=<s>
    peak_rss_gib=<g> duckdb_s=<s> vs_duckdb=<x> rerun_vs_duckdb=<x>

Targets: total_s ≤ 120, peak_rss_gib ≤ 4, step_overhead_s ≤ 15.

``--executor`` picks the run's executor config (default: the code location's own, in-process);
``multiprocess`` / ``forkserver`` measure the alternatives.

Run: ``python benchmarks/bench_day.py [--events N] [--workdir .bench/day] [--executor …]``.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
from bench_features import BENCH_DAY, make_events
from pipeline_runs import REPO_ROOT, TRAIN_DAYS, BenchHome, CliRun, duckdb_peer

#: Run config of each executor choice (None: the code location's default).
EXECUTORS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "in_process": {"execution": {"config": {"in_process": {}}}},
    "multiprocess": {"execution": {"config": {"multiprocess": {}}}},
    "forkserver": {"execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}},
}


def user_days(home: BenchHome) -> int:
    with duckdb.connect(str(home.root / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(
            "select count(*) from features.user_day_features where event_day = ?", [BENCH_DAY]
        ).fetchone()
    return int(row[0]) if row else 0


def report_steps(home: BenchHome, run: CliRun) -> float:
    """Print each step's own time and where the run's memory peaked; return the steps' sum."""
    steps = home.step_seconds(run.run_id)
    for step, seconds in sorted(steps.items(), key=lambda item: -item[1]):
        print(f"  {step:<40} {seconds:7.1f} s")
    print(f"  peak RSS {run.describe_peak()} during {home.step_at(run.run_id, run.peak_at)}")
    return sum(steps.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / ".bench" / "day")
    parser.add_argument("--executor", choices=sorted(EXECUTORS), default="default")
    args = parser.parse_args(argv)

    home = BenchHome.fresh(
        args.workdir.resolve() / "home", start_day=BENCH_DAY - timedelta(days=TRAIN_DAYS)
    )
    train_days = home.train_champion(BENCH_DAY)
    print(f"champion trained on {train_days[0]} … {train_days[-1]}")
    home.landing_events.mkdir(parents=True, exist_ok=True)
    landing_file = home.landing_events / f"events_{BENCH_DAY.isoformat()}.parquet"
    make_events(args.events, day=BENCH_DAY).write_parquet(landing_file)
    config = EXECUTORS[args.executor]
    first = home.run_job("daily_job", [BENCH_DAY], config)
    print(f"daily_job {BENCH_DAY} ({args.executor} executor): {first.wall_s:.1f} s")
    work_s = report_steps(home, first)
    rerun = home.run_job("daily_job", [BENCH_DAY], config)
    print(f"re-run: {rerun.wall_s:.1f} s")
    report_steps(home, rerun)
    peer = duckdb_peer([landing_file])
    pipeline_user_days = user_days(home)
    print(f"peer: one DuckDB query, {peer.seconds:.1f} s, {peer.user_days} user-days")
    if peer.user_days != pipeline_user_days:
        print(f"note: the peer found {peer.user_days} user-days, the pipeline {pipeline_user_days}")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"bench-day events={args.events} user_days={pipeline_user_days} "
        f"total_s={first.wall_s:.1f} rerun_s={rerun.wall_s:.1f} "
        f"step_overhead_s={first.wall_s - work_s:.1f} work_s={work_s:.1f} "
        f"peak_rss_gib={max(first.peak_rss_gib, rerun.peak_rss_gib):.2f} "
        f"duckdb_s={peer.seconds:.1f} vs_duckdb={first.wall_s / peer.seconds:.1f} "
        f"rerun_vs_duckdb={rerun.wall_s / peer.seconds:.1f}"
    )


if __name__ == "__main__":
    main()
