"""Command line: simulate a window and write it as landing files.

    python -m anomaly_pipeline.simulate --start 2026-11-01 --days 14 --users 2000 --seed 7 \
        [--drift-from DAY] [--home DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date

from anomaly_pipeline.paths import data_home
from anomaly_pipeline.simulate.config import SimulationConfig
from anomaly_pipeline.simulate.core import simulate
from anomaly_pipeline.simulate.landing import write_landing


def _parser() -> argparse.ArgumentParser:
    defaults = SimulationConfig()
    parser = argparse.ArgumentParser(
        prog="python -m anomaly_pipeline.simulate",
        description="Simulate e-commerce behaviour logs with labelled anomalies and write one "
        "events and one labels Parquet file per day into the landing folders.",
    )
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=defaults.start_day,
        help="first UTC day (YYYY-MM-DD)",
    )
    parser.add_argument("--days", type=int, default=defaults.n_days, help="number of days")
    parser.add_argument("--users", type=int, default=defaults.n_users, help="population size")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--anomaly-share",
        type=float,
        default=defaults.anomaly_share,
        help="share of active user-days that are abnormal",
    )
    parser.add_argument(
        "--difficulty",
        type=float,
        default=defaults.difficulty,
        help="0 = blatant anomalies, 1 = almost like normal users",
    )
    parser.add_argument(
        "--drift-from",
        type=date.fromisoformat,
        default=None,
        help="day from which behaviour drifts (shorter dwell, new channel)",
    )
    parser.add_argument(
        "--home",
        default=None,
        help="data directory (default: $ANOMALY_PIPELINE_HOME, else ./.anomaly_pipeline)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = SimulationConfig(
            start_day=args.start,
            n_days=args.days,
            n_users=args.users,
            seed=args.seed,
            anomaly_share=args.anomaly_share,
            difficulty=args.difficulty,
            drift_from=args.drift_from,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    home = data_home(args.home).ensure()
    began = time.perf_counter()
    sim = simulate(config)
    paths = write_landing(sim, home.landing_events, home.landing_labels)
    print(
        f"simulated {sim.events.height} events and {sim.labels.height} labelled user-days "
        f"over {config.n_days} day(s) in {time.perf_counter() - began:.1f} s; wrote "
        f"{len(paths)} files under {home.landing}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
