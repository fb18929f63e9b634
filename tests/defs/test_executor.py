"""The executor choice: a run's steps execute in the run's own process unless its run config asks
for a process per step (multiprocess, with forkserver as the fast start method).

Why in-process by default: every day-level step is in the one-slot ``duckdb_warehouse`` pool and
every training step in ``model_training``, so steps run one at a time anyway, and a process per
step re-imported the code location each time (see README, "Benchmarks").
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from anomaly_pipeline.defs.recovery import DEFAULT_EXECUTION, recovering_executor


@dg.asset
def first_step() -> int:
    return os.getpid()


@dg.asset
def second_step(first_step: int) -> int:
    return os.getpid()


def two_step_job() -> dg.JobDefinition:
    """Two dependent steps on the code location's executor (a module-level function, so the
    multiprocess executor can rebuild the job in its step processes)."""
    return dg.Definitions(
        assets=[first_step, second_step],
        jobs=[dg.define_asset_job("two_steps")],
        executor=recovering_executor,
    ).resolve_job_def("two_steps")


def _step_pids(tmp_path: Path, run_config: dict | None) -> tuple[int, set[int]]:
    """The pid that orchestrated the run and the pids its steps started in."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        with dg.execute_job(
            dg.reconstructable(two_step_job), instance=instance, run_config=run_config or {}
        ) as result:
            assert result.success
            starts = result.get_step_success_events()
            pids = {
                entry.dagster_event.pid
                for entry in instance.all_logs(
                    result.run_id, of_type=dg.DagsterEventType.STEP_START
                )
                if entry.dagster_event is not None
            }
            assert len(starts) == 2
        return os.getpid(), pids


def test_the_default_executor_runs_every_step_in_the_run_process(tmp_path: Path) -> None:
    assert DEFAULT_EXECUTION == {"in_process": {}}
    orchestrator, steps = _step_pids(tmp_path, None)
    assert steps == {orchestrator}


@pytest.mark.slow
def test_a_run_can_still_ask_for_a_forkserver_process_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the step processes rebuild the job from this module: make it importable there
    here = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    forkserver = {
        "execution": {
            "config": {
                "multiprocess": {
                    "start_method": {"forkserver": {"preload_modules": [__name__]}},
                }
            }
        }
    }
    orchestrator, steps = _step_pids(tmp_path, forkserver)
    assert orchestrator not in steps and len(steps) == 2
