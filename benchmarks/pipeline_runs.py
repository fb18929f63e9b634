"""What the end-to-end benchmarks share: a fresh data home with a trained champion, jobs run as
the `dagster` CLI processes an operator starts, their peak memory, each step's own time, and the
peer their figures are divided by.

Why CLI processes: what an on-call engineer waits for includes starting the process, loading the
code location and the executor's step start-up; an in-process ``execute_in_process`` would hide
all three.

The peer (``duckdb_peer``): the same landing files' per-user-day features computed by one
hand-written DuckDB query per day (``bench_features.limit_features``, the feature benchmark's
limit), in this process, on the same input. ``vs_duckdb`` = the pipeline's time / the peer's: what
the whole pipeline (ingest, validation, dbt's intermediate tables, scoring, alerts, drift,
orchestration) costs against the bare feature computation, on the same machine under the same load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench_features import limit_features

from anomaly_pipeline.instance import open_instance
from anomaly_pipeline.privacy import DEMO_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
MODULE = "anomaly_pipeline.definitions"
#: The champion's training history: simulated days before the benchmark's first day.
TRAIN_DAYS = 7
TRAIN_USERS = 400
#: Baselines only (no torchrun): the benchmarks time the daily path, not training.
TRAINING_CONFIG = {
    "ops": {
        "training_set": {
            "config": {"window_days": TRAIN_DAYS, "validation_days": 1, "holdout_days": 2}
        },
        "anomaly_model": {"config": {"kinds": []}},
    }
}


@dataclass(frozen=True)
class CliRun:
    """One `dagster` CLI process: its wall time, the peak RSS of its process tree, its run, and
    where the peak was: its time and each process's share of it (command name → GiB)."""

    wall_s: float
    peak_rss_gib: float
    run_id: str
    peak_at: float
    peak_by_process: dict[str, float]

    def describe_peak(self) -> str:
        """``1.23 GiB = dagster 0.80 + dbt 0.43`` (the processes' RSS at the peak sample)."""
        parts = sorted(self.peak_by_process.items(), key=lambda item: -item[1])
        return f"{self.peak_rss_gib:.2f} GiB = " + " + ".join(f"{n} {g:.2f}" for n, g in parts)


@dataclass(frozen=True)
class BenchHome:
    """A data directory with its own Dagster instance (the project's resources/dagster.yaml)."""

    root: Path
    start_day: date

    @classmethod
    def fresh(cls, root: Path, start_day: date) -> BenchHome:
        shutil.rmtree(root, ignore_errors=True)
        (root / "dagster").mkdir(parents=True)
        shutil.copy(REPO_ROOT / "resources" / "dagster.yaml", root / "dagster" / "dagster.yaml")
        return cls(root, start_day)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANOMALY_PIPELINE_HOME": str(self.root),
            "DAGSTER_HOME": str(self.root / "dagster"),
            DEMO_ENV: "1",
            "ANOMALY_PIPELINE_START_DATE": self.start_day.isoformat(),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }

    @property
    def landing_events(self) -> Path:
        return self.root / "landing" / "events"

    def run_job(
        self, job: str, days: list[date], run_config: dict[str, Any] | None = None
    ) -> CliRun:
        """`dagster job execute` of ``job`` over ``days`` (one run; a range uses range tags;
        no days: an unpartitioned job)."""
        tags = (
            {}
            if not days
            else {"dagster/partition": days[0].isoformat()}
            if len(days) == 1
            else {
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            }
        )
        command = [DAGSTER, "job", "execute", "-m", MODULE, "-j", job]
        if tags:
            command += ["--tags", json.dumps(tags)]
        if run_config:
            config_path = self.root / f"{job}_config.json"
            config_path.write_text(json.dumps(run_config))
            command += ["-c", str(config_path)]
        return self._cli(command, job)

    def _cli(self, command: list[str], job: str) -> CliRun:
        log = self.root / "cli.log"
        started = time.perf_counter()
        with open(log, "a", encoding="utf-8") as out:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
            peak = _PeakRss(process.pid)
            returncode = process.wait()
            peak.stop()
        wall_s = time.perf_counter() - started
        if returncode != 0:
            raise RuntimeError(f"{' '.join(command[:6])} failed ({returncode}); see {log}")
        return CliRun(wall_s, peak.gib, self.latest_run_id(job), peak.at, peak.by_process)

    def latest_run_id(self, job: str) -> str:
        import dagster as dg

        with open_instance(self.root / "dagster") as instance:
            (run,) = instance.get_runs(filters=dg.RunsFilter(job_name=job), limit=1)
            return run.run_id

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """Each step's own time: from its STEP_START to its STEP_SUCCESS (or failure)."""
        import dagster as dg

        ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
        starts: dict[str, float] = {}
        seconds: dict[str, float] = {}
        with open_instance(self.root / "dagster") as instance:
            for entry in instance.all_logs(run_id):
                event = entry.dagster_event
                if event is None or event.step_key is None:
                    continue
                if event.event_type == dg.DagsterEventType.STEP_START:
                    starts[event.step_key] = entry.timestamp
                elif event.event_type in ends and event.step_key in starts:
                    seconds[event.step_key] = entry.timestamp - starts[event.step_key]
        return seconds

    def step_at(self, run_id: str, timestamp: float) -> str:
        """The step(s) of the run executing at ``timestamp`` (epoch seconds), else "between
        steps"."""
        import dagster as dg

        ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
        running: set[str] = set()
        with open_instance(self.root / "dagster") as instance:
            for entry in instance.all_logs(run_id):
                event = entry.dagster_event
                if entry.timestamp > timestamp:
                    break
                if event is None or event.step_key is None:
                    continue
                if event.event_type == dg.DagsterEventType.STEP_START:
                    running.add(event.step_key)
                elif event.event_type in ends:
                    running.discard(event.step_key)
        return ", ".join(sorted(running)) or "between steps"

    def train_champion(self, first_bench_day: date) -> list[date]:
        """Simulate ``TRAIN_DAYS`` days before ``first_bench_day``, ingest them and train the
        baselines: the champion the benchmark's days are scored with. Returns those days."""
        from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

        start = first_bench_day - timedelta(days=TRAIN_DAYS)
        simulation = simulate(
            SimulationConfig(start_day=start, n_days=TRAIN_DAYS, n_users=TRAIN_USERS, seed=3)
        )
        write_landing(simulation, self.landing_events, self.root / "landing" / "labels")
        days = [start + timedelta(days=i) for i in range(TRAIN_DAYS)]
        self.run_job("ingest_features_job", days)
        self.run_job("training_job", [], TRAINING_CONFIG)
        return days


@dataclass(frozen=True)
class PeerRun:
    """The DuckDB peer over some landing files: its query seconds and the user-days it found."""

    seconds: float
    user_days: int


def duckdb_peer(parquets: list[Path]) -> PeerRun:
    """One hand-written DuckDB query per landing file (one day each, as the pipeline partitions
    them), in an in-memory database; the benchmark's data home is in demo mode, so the peer
    pseudonymises with the same demo key. Seconds count the queries only, not the result's read."""
    previous = os.environ.get(DEMO_ENV)
    os.environ[DEMO_ENV] = "1"
    try:
        runs = [limit_features(parquet) for parquet in parquets]
    finally:
        if previous is None:
            del os.environ[DEMO_ENV]
        else:
            os.environ[DEMO_ENV] = previous
    return PeerRun(sum(s for s, _ in runs), sum(len(frame) for _, frame in runs))


class _PeakRss:
    """Samples the summed RSS of a process and its descendants (from /proc) until stopped; keeps
    the time of the largest sum and each process's RSS in it (by command name)."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self._root = pid
        self._interval_s = interval_s
        self._peak = 0
        self.at = time.time()
        self._by_process: dict[str, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.is_set():
            by_process: dict[str, int] = {}
            for pid in _descendants(self._root):
                try:
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                except (OSError, IndexError, ValueError):
                    continue  # ended between the listing and the read
                by_process[name] = by_process.get(name, 0) + rss
            total = sum(by_process.values())
            if total > self._peak:
                self._peak, self.at, self._by_process = total, time.time(), by_process
            self._done.wait(self._interval_s)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    @property
    def gib(self) -> float:
        return self._peak / 2**30

    @property
    def by_process(self) -> dict[str, float]:
        return {name: rss / 2**30 for name, rss in self._by_process.items()}


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent pids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # the command name (field 2) may hold spaces; the fields after it do not
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found
