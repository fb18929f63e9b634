"""Recovery of runs whose processes died: fail them, free their pool slots, end their MLflow runs.

Why: a run killed with SIGKILL (the OOM killer, a lost terminal, ``kill -9``) cannot report its own
end. It stays STARTED and keeps the concurrency slots it claimed, and the next run waits on "Step
blocked by limit for pool duckdb_warehouse" forever; marking it failed by hand does not free the
slots either. Dagster's own run monitoring lives in the daemon, checks worker health only for
launchers that support it (the DefaultRunLauncher does not) and frees the slots of finished runs
only after ``free_slots_after_run_end_seconds``; the CLI and the demo run no daemon at all.

So every run of this code location records where it executes — the host and its orchestrating
pid, as run tags (``process_tags``) — and, before its first step claims a slot, recovers the dead
runs of the instance (``recover_dead_runs``): a run recorded on this host none of whose processes
(the orchestrator and every step process that logged a STEP_START) is still alive is marked failed,
its slots and queued claims are freed, and its MLflow runs still RUNNING are ended KILLED. Runs of
other hosts are left to the launcher's health checks (K8s, ECS, …); a run that has already finished
but still holds slots (its worker died after the failure was reported) is freed in any case.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import dagster as dg

# The executor's config schema and creation function only: celery itself is imported when a run
# chooses it.
from dagster_celery.executor import CELERY_CONFIG, celery_executor

from anomaly_pipeline.paths import data_home
from anomaly_pipeline.processes import host_name, is_alive

#: Run tags written at the start of every run: where its processes can be checked.
HOST_TAG = "anomaly_pipeline/host"
PID_TAG = "anomaly_pipeline/pid"
#: Statuses of a run whose process may have died without a word.
_UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RecoveredRun:
    """What recovery did for one dead run."""

    run_id: str
    job_name: str
    marked_failed: bool
    mlflow_runs_killed: list[str]


def process_tags() -> dict[str, str]:
    """The tags that let a later run judge whether this process is still alive."""
    return {HOST_TAG: host_name(), PID_TAG: str(os.getpid())}


def recover_dead_runs(
    instance: dg.DagsterInstance, mlflow_tracking_uri: str | None = None
) -> list[RecoveredRun]:
    """Fail the dead runs of this host, free their slots and end their MLflow runs KILLED.

    ``mlflow_tracking_uri`` defaults to the data directory's tracking store (when it exists).
    Idempotent and cheap when nothing is dead (two queries), so it runs before every run.
    """
    recovered = []
    for record in _candidates(instance):
        run = record.dagster_run
        finished = run.is_finished
        if not finished and not _is_dead(instance, record):
            continue
        if finished and run.tags.get(HOST_TAG) == host_name() and _any_alive(instance, record):
            continue  # reported finished, but a step process is still winding down
        if not finished:
            instance.report_run_failed(
                run,
                message=(
                    "Recovered by the next run: no process of this run is alive any more "
                    "(killed or crashed without reporting); its pool slots are freed."
                ),
            )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(
            RecoveredRun(
                run_id=run.run_id,
                job_name=run.job_name,
                marked_failed=not finished,
                mlflow_runs_killed=_kill_mlflow_runs(run.run_id, mlflow_tracking_uri),
            )
        )
    return recovered


def _candidates(instance: dg.DagsterInstance) -> Iterator[dg.RunRecord]:
    """Unfinished runs recorded on this host, and every run holding or awaiting a pool slot."""
    seen = set()
    unfinished = instance.get_run_records(
        filters=dg.RunsFilter(statuses=_UNFINISHED, tags={HOST_TAG: host_name()})
    )
    holders: list[dg.RunRecord] = []
    if instance.event_log_storage.supports_global_concurrency_limits:
        run_ids = instance.event_log_storage.get_concurrency_run_ids()
        if run_ids:
            holders = list(instance.get_run_records(filters=dg.RunsFilter(run_ids=list(run_ids))))
    for record in [*unfinished, *holders]:
        if record.dagster_run.run_id not in seen:
            seen.add(record.dagster_run.run_id)
            yield record


def _is_dead(instance: dg.DagsterInstance, record: dg.RunRecord) -> bool:
    """An unfinished run is dead when it was recorded on this host and none of its processes
    lives; an unrecorded run (or one of another host) cannot be judged from here."""
    if record.dagster_run.tags.get(HOST_TAG) != host_name():
        return False
    return not _any_alive(instance, record)


def _any_alive(instance: dg.DagsterInstance, record: dg.RunRecord) -> bool:
    run = record.dagster_run
    seen_at = record.start_time or record.create_timestamp.timestamp()
    processes = [(int(run.tags[PID_TAG]), seen_at)] if PID_TAG in run.tags else []
    step_starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    processes += [
        (entry.dagster_event.pid, entry.timestamp)
        for entry in step_starts
        if entry.dagster_event is not None and entry.dagster_event.pid is not None
    ]
    return any(is_alive(pid, at) for pid, at in processes)


def _kill_mlflow_runs(dagster_run_id: str, tracking_uri: str | None) -> list[str]:
    """End the dead run's MLflow runs that still say RUNNING as KILLED (none without a store)."""
    if tracking_uri is None:
        home = data_home()
        if not home.mlflow_db.exists():
            return []
        tracking_uri = home.mlflow_tracking_uri
    from anomaly_pipeline.model_registry import kill_runs_of

    return kill_runs_of(tracking_uri, dagster_run_id)


class RecoveringExecutor(dg.Executor):
    """The multiprocess / in-process / Celery executor, preceded by the run's tags and the
    recovery (in the run's orchestrating process; Celery workers only execute steps).

    Why inside the executor: it is the one place every launch path (CLI, UI, schedule, sensor,
    backfill) passes through in the run's own process, after the run exists and before any step
    claims a pool slot.
    """

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def __getattr__(self, name: str) -> Any:
        """The rest is the inner executor's (Celery's execution loop reads its ``app_args``)."""
        return getattr(self._inner, name)

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[dg.DagsterEvent]:
        instance = plan_context.instance
        instance.add_run_tags(plan_context.run_id, process_tags())
        for run in recover_dead_runs(instance):
            plan_context.log.warning(
                f"Recovered dead run {run.run_id} ({run.job_name}): "
                f"{'marked failed, ' if run.marked_failed else ''}pool slots freed"
                + (
                    f", MLflow runs {run.mlflow_runs_killed} ended KILLED"
                    if run.mlflow_runs_killed
                    else ""
                )
            )
        yield from self._inner.execute(plan_context, execution_plan)


#: The executor config every run gets unless its run config says otherwise: one process.
#: Every day-level step sits in the ``duckdb_warehouse`` pool and every training step in
#: ``model_training`` (limit 1 each), so a run's steps execute one at a time whatever the executor;
#: the multiprocess executor only added a fresh process per step that imports the code location
#: again (measured in the README, "Benchmarks"). ``multiprocess`` (with ``start_method:
#: forkserver``) and ``celery`` stay selectable per run.
DEFAULT_EXECUTION: Final[dict[str, Any]] = {"in_process": {}}

#: Dagster's executor choices (``in_process``, our default, and ``multiprocess``) plus
#: ``celery``: steps as tasks on a Celery broker, executed by ``dagster-celery`` workers that load
#: this code location (README, "Running beyond one machine"). Run config picks one:
#: ``execution: {config: {celery: {broker: …, backend: …}}}``.
_LOCAL_CHOICES: Final = dg.multi_or_in_process_executor.config_schema.as_field()
EXECUTOR_CONFIG: Final = dg.Field(
    dg.Selector({**cast(dg.Selector, _LOCAL_CHOICES.config_type).fields, "celery": CELERY_CONFIG}),
    default_value=DEFAULT_EXECUTION,
)


def _requirements(config: Mapping[str, Any]) -> Sequence[dg.ExecutorRequirement]:
    if "celery" in config:
        return celery_executor.get_requirements(config["celery"])
    return dg.multi_or_in_process_executor.get_requirements(config)


@dg.executor(name="recovering_executor", config_schema=EXECUTOR_CONFIG, requirements=_requirements)
def recovering_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """The chosen executor (Dagster's default ones, or Celery) wrapped in ``RecoveringExecutor``."""
    config = init_context.executor_config
    chosen, context = dg.multi_or_in_process_executor, init_context
    if "celery" in config:
        celery_config = cast(Mapping[str, object], config["celery"])
        chosen, context = celery_executor, init_context._replace(executor_config=celery_config)
    create = chosen.executor_creation_fn
    if create is None:  # both always have one; a clear error if not
        raise dg.DagsterInvariantViolationError(f"{chosen.name} has no creation fn")
    return RecoveringExecutor(create(context))


@dg.definitions
def recovery() -> dg.Definitions:
    """Every job of the code location runs on ``recovering_executor``."""
    return dg.Definitions(executor=recovering_executor)
