"""How long a run over a year of daily partitions waits to start, launched from the CLI.

    .venv/bin/python benchmarks/bench_range_start.py [--days 365]

Each measurement is the README's range command, ``dagster asset materialize --select <every
day-level group> --partition-range <first>...<last>``, in a fresh data home with no landing files:
``start_s`` runs from launching the process to the run's start (its RUN_START event), i.e. loading
the code location, creating the run and storing its planned events. The run then fails at
``raw_events`` (no landing files), which is not timed.

The peer, measured in the same run on the same range: the same command on an instance whose event
log is Dagster's own ``SqliteEventLogStorage`` (the project's ``dagster.yaml`` without its
``event_log_storage`` entry). Last line: ``RESULT_FORMAT``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml
from pipeline_runs import DAGSTER, MODULE, REPO_ROOT, BenchHome

from anomaly_pipeline.instance import open_instance
from anomaly_pipeline.instance.event_log import BATCH_SIZE_VARIABLE

#: The day-level asset groups: ``daily_job``'s selection, as the README's range commands name them.
SELECTION = "group:ingest or group:features or group:scoring or group:monitoring"
FIRST_DAY = date(2025, 1, 1)
RESULT_FORMAT = (
    "bench-range-start days={days} planned_events={events} start_s={start_s:.1f} "
    "dagster_sqlite_start_s={peer_s:.1f} vs_dagster_sqlite={ratio:.3f}"
)


@dataclass(frozen=True)
class RangeStart:
    """One launch: seconds to the run's start, its planned events and how the run ended."""

    start_s: float
    planned_events: int
    status: str
    run_id: str


def instance_home(root: Path, *, dagster_event_log: bool) -> BenchHome:
    """A fresh data home with the project's instance, or with Dagster's own SQLite event log."""
    home = BenchHome.fresh(root, FIRST_DAY)
    if dagster_event_log:
        config_path = root / "dagster" / "dagster.yaml"
        config = yaml.safe_load(config_path.read_text())
        del config["event_log_storage"]
        config_path.write_text(yaml.safe_dump(config))
    return home


def range_start(home: BenchHome, days: int) -> RangeStart:
    """Launch the range command over ``days`` days in ``home``; time it to the run's start."""
    import dagster as dg

    last = FIRST_DAY + timedelta(days=days - 1)
    command = [DAGSTER, "asset", "materialize", "-m", MODULE, "--select", SELECTION]
    command += ["--partition-range", f"{FIRST_DAY}...{last}"]
    # The variable is the instance's choice (its storage sets it); this process's must not leak.
    env = {key: value for key, value in home.env.items() if key != BATCH_SIZE_VARIABLE}
    launched = time.time()
    with open(home.root / "cli.log", "w", encoding="utf-8") as out:
        subprocess.run(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    with open_instance(home.root / "dagster") as instance:
        (run,) = instance.get_runs(limit=1)
        stats = instance.get_run_stats(run.run_id)
        planned = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1_000_000
        ).records
    if stats.start_time is None:
        raise RuntimeError(f"run {run.run_id} never started; see {home.root / 'cli.log'}")
    return RangeStart(stats.start_time - launched, len(planned), run.status.value, run.run_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_range_start_") as tmp:
        ours = range_start(instance_home(Path(tmp) / "ours", dagster_event_log=False), args.days)
        print(f"project instance: {ours}", flush=True)
        peer = range_start(instance_home(Path(tmp) / "peer", dagster_event_log=True), args.days)
        print(f"Dagster's SqliteEventLogStorage: {peer}", flush=True)
    print(
        RESULT_FORMAT.format(
            days=args.days,
            events=ours.planned_events,
            start_s=ours.start_s,
            peer_s=peer.start_s,
            ratio=ours.start_s / peer.start_s,
        )
    )


if __name__ == "__main__":
    main()
