"""How long a run over a year of daily partitions waits to start, launched from the CLI or the UI.

    .venv/bin/python benchmarks/bench_range_start.py [--days 365] [--ui-repeats 3]

Each measurement is the README's range command, ``dagster asset materialize --select <every
day-level group> --partition-range <first>...<last>``, in a fresh data home with no landing files:
``start_s`` runs from launching the process to the run's start (its RUN_START event), i.e. loading
the code location, creating the run and storing its planned events. The run then fails at
``raw_events`` (no landing files), which is not timed.

The peer, measured in the same run on the same range: the same command on an instance whose event
log is Dagster's own ``SqliteEventLogStorage`` (the project's ``dagster.yaml`` without its
``event_log_storage`` entry).

The UI path, in a third fresh home: ``dagster dev`` as ``make dev`` starts it (benchmarks/
served_ui.py); once the code location is loaded and the daemon runs, the GraphQL mutation the UI's
Materialize dialog sends for a partition range of several assets (``launchPartitionBackfill`` with
the day-level assets as ``assetSelection`` and the range's days as ``partitionNames``), repeated
``--ui-repeats`` times, each after the previous run ended. ``ui_start_s`` runs from the POST to the
run's RUN_START: the backfill daemon's wait for its next loop (Dagster's fixed 30 s interval), its
creating the one run (single-run backfill policies) with its planned events, the queued run
coordinator's dequeue and the run worker's start. ``ui_launchpad_start_s``: after each, the same
range as one run from ``daily_job``'s Launchpad (``launchPipelineExecution`` with the range's
tags), which the webserver creates itself, without the backfill daemon. Last line:
``RESULT_FORMAT``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pipeline_runs import DAGSTER, MODULE, REPO_ROOT, BenchHome
from served_ui import DagsterUi, dagster_dev

from anomaly_pipeline.instance import open_instance
from anomaly_pipeline.instance.event_log import BATCH_SIZE_VARIABLE

if TYPE_CHECKING:
    from dagster import RunsFilter

#: The day-level asset groups: ``daily_job``'s selection, as the README's range commands name them.
DAY_GROUPS = ("ingest", "features", "scoring", "monitoring")
SELECTION = " or ".join(f"group:{group}" for group in DAY_GROUPS)
FIRST_DAY = date(2025, 1, 1)
RESULT_FORMAT = (
    "bench-range-start days={days} planned_events={events} start_s={start_s:.1f} "
    "dagster_sqlite_start_s={peer_s:.1f} vs_dagster_sqlite={ratio:.3f} "
    "ui_start_s={ui_s:.1f} ui_start_min_s={ui_min_s:.1f} ui_start_max_s={ui_max_s:.1f} "
    "ui_launchpad_start_s={launchpad_s:.1f}"
)
#: The tags of a run over a partition range (Dagster's; the Launchpad's tag editor sets them).
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

#: What the UI's Materialize dialog sends for a partition range of several assets
#: (LaunchAssetChoosePartitionsDialog.tsx in dagster-ui: ``assetSelection`` + ``partitionNames``).
LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on Error { message } } }"""
ASSET_GROUPS = "{ assetNodes { assetKey { path } groupName } }"
#: What the Launchpad sends for a job's run (LaunchPipelineExecution in dagster-ui).
LAUNCH_RUN = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }"""
REPOSITORY = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
)
#: How long a launched range may take to start before the benchmark gives up on it.
UI_START_TIMEOUT_S = 300


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


@dataclass(frozen=True)
class UiRangeStart:
    """One range launched from the UI: seconds from the POST to each step of its run's start.

    ``launched_as``: ``backfill`` (the Materialize dialog) or ``run`` (the Launchpad);
    ``created_s``: the run's first event is stored (for a backfill, the daemon's loop found it
    and is creating the run: its planned events);
    ``enqueued_s``: its planned events are stored and it waits in the run queue;
    ``starting_s``: the queued run coordinator launched it; ``start_s``: RUN_START.
    """

    launched_as: str
    run_id: str
    runs: int
    partition_range: tuple[str, str]
    created_s: float
    enqueued_s: float
    starting_s: float
    start_s: float


def day_level_assets(ui: DagsterUi) -> list[dict[str, list[str]]]:
    """The keys of the day-level groups' assets, as the UI's asset graph lists them."""
    nodes = ui.graphql(ASSET_GROUPS)["assetNodes"]
    return [{"path": n["assetKey"]["path"]} for n in nodes if n["groupName"] in DAY_GROUPS]


def launch_range_backfill(ui: DagsterUi, first: date, days: int) -> tuple[str, float]:
    """Send the UI's backfill mutation over ``days`` days from ``first``; the backfill's id and
    the POST's time (epoch seconds)."""
    params = {
        "assetSelection": day_level_assets(ui),
        "partitionNames": [(first + timedelta(days=i)).isoformat() for i in range(days)],
        "fromFailure": False,
        "tags": [],
    }
    posted = time.time()
    result = ui.graphql(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {result}")
    return result["backfillId"], posted


def launch_range_run(ui: DagsterUi, first: date, days: int) -> tuple[str, float]:
    """Launch ``daily_job`` over ``days`` days from ``first`` as the Launchpad does, with the
    range's tags; the run's id and the POST's time (epoch seconds)."""
    from anomaly_pipeline.defs.jobs import daily_job

    (repository,) = ui.graphql(REPOSITORY)["repositoriesOrError"]["nodes"]
    last = first + timedelta(days=days - 1)
    params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "jobName": daily_job.name,
        },
        "runConfigData": {},
        "mode": "default",
        "executionMetadata": {
            "tags": [
                {"key": key, "value": day.isoformat()}
                for key, day in zip(RANGE_TAGS, (first, last), strict=True)
            ]
        },
    }
    posted = time.time()
    result = ui.graphql(LAUNCH_RUN, {"executionParams": params})["launchPipelineExecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchPipelineExecution: {result}")
    return result["run"]["runId"], posted


def wait_for_run(home: BenchHome, filters: RunsFilter, *, until_finished: bool) -> str:
    """The id of the first run ``filters`` selects, once it started (or ended)."""
    deadline = time.monotonic() + UI_START_TIMEOUT_S
    with open_instance(home.root / "dagster") as instance:
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=filters)
            if runs:
                run = runs[-1]  # newest first
                started = instance.get_run_stats(run.run_id).start_time is not None
                if run.is_finished and not started:
                    raise RuntimeError(f"run {run.run_id} ended ({run.status}) before it started")
                if run.is_finished if until_finished else started:
                    return run.run_id
            time.sleep(0.2)
    raise TimeoutError(f"{filters}: no run started in {UI_START_TIMEOUT_S} s")


def ui_range_start(ui: DagsterUi, home: BenchHome, days: int, *, backfill: bool) -> UiRangeStart:
    """Launch the range from ``ui`` over ``home``'s instance, as a backfill (the Materialize
    dialog) or as one run (the Launchpad); time it to the run's start and wait for the run's end
    (the run fails at ``raw_events``: no landing files)."""
    import dagster as dg

    if backfill:
        backfill_id, posted = launch_range_backfill(ui, FIRST_DAY, days)
        filters = dg.RunsFilter.for_backfill(backfill_id)
    else:
        launched_id, posted = launch_range_run(ui, FIRST_DAY, days)
        filters = dg.RunsFilter(run_ids=[launched_id])
    run_id = wait_for_run(home, filters, until_finished=False)
    wait_for_run(home, filters, until_finished=True)
    steps = (
        dg.DagsterEventType.RUN_ENQUEUED,
        dg.DagsterEventType.RUN_STARTING,
        dg.DagsterEventType.RUN_START,
    )
    with open_instance(home.root / "dagster") as instance:
        runs = instance.get_runs(filters=filters)
        (first,) = instance.get_records_for_run(run_id, limit=1).records
        at = {
            entry.dagster_event.event_type: entry.timestamp
            for entry in instance.all_logs(run_id, of_type=set(steps))
            if entry.dagster_event is not None
        }
    tags = runs[-1].tags
    start_tag, end_tag = RANGE_TAGS
    return UiRangeStart(
        launched_as="backfill" if backfill else "run",
        run_id=run_id,
        runs=len(runs),
        partition_range=(tags.get(start_tag, ""), tags.get(end_tag, "")),
        created_s=first.timestamp - posted,
        enqueued_s=at[steps[0]] - posted,
        starting_s=at[steps[1]] - posted,
        start_s=at[steps[2]] - posted,
    )


def ui_range_starts(root: Path, days: int, repeats: int) -> list[UiRangeStart]:
    """``repeats`` ranges launched from one ``dagster dev`` over a fresh home with the project's
    instance, each as a backfill and then as a Launchpad run, one after the other.

    Each backfill is launched after a random pause of up to one backfill-daemon interval, so the
    launches fall at random moments of the daemon's loop: launched at a fixed delay after the
    previous run, they would all wait about as long for the loop's next pass.
    """
    from dagster._daemon.controller import DEFAULT_DAEMON_INTERVAL_SECONDS

    home = instance_home(root, dagster_event_log=False)
    pauses = random.Random(days)
    starts = []
    with dagster_dev(home.env, home.root / "dagster_dev.log") as ui:
        for _ in range(repeats):
            time.sleep(pauses.uniform(0, DEFAULT_DAEMON_INTERVAL_SECONDS))
            for backfill in (True, False):
                starts.append(ui_range_start(ui, home, days, backfill=backfill))
                print(f"from the UI: {starts[-1]}", flush=True)
    return starts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--ui-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_range_start_") as tmp:
        ours = range_start(instance_home(Path(tmp) / "ours", dagster_event_log=False), args.days)
        print(f"project instance: {ours}", flush=True)
        starts = ui_range_starts(Path(tmp) / "ui", args.days, args.ui_repeats)
        ui = [s.start_s for s in starts if s.launched_as == "backfill"]
        launchpad = [s.start_s for s in starts if s.launched_as == "run"]
        for name, seconds in (("backfill", ui), ("Launchpad run", launchpad)):
            print(f"from the UI as a {name}, seconds to RUN_START: ", end="")
            print(", ".join(f"{s:.1f}" for s in seconds), flush=True)
        peer = range_start(instance_home(Path(tmp) / "peer", dagster_event_log=True), args.days)
        print(f"Dagster's SqliteEventLogStorage: {peer}", flush=True)
    print(
        RESULT_FORMAT.format(
            days=args.days,
            events=ours.planned_events,
            start_s=ours.start_s,
            peer_s=peer.start_s,
            ratio=ours.start_s / peer.start_s,
            ui_s=statistics.median(ui),
            ui_min_s=min(ui),
            ui_max_s=max(ui),
            launchpad_s=statistics.median(launchpad),
        )
    )


if __name__ == "__main__":
    main()
