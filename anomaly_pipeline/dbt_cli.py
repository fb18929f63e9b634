"""One dbt command as a child process, and what it did to each node (from ``run_results.json``).

dbt runs in its own process (its DuckDB plugin, Spark session and threads stay out of the
pipeline's); its log streams to this process's stdout, which Dagster keeps as the step's log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: dbt's parse cache, copied into each command's own target folder (below) so the command can
#: reuse the project's parse instead of parsing every file again.
PARTIAL_PARSE_FILE = "partial_parse.msgpack"
#: Lines of dbt's log kept for the error of a failed command.
LOG_TAIL_LINES = 40
#: Seconds dbt gets to stop cleanly (roll back, close the warehouse) when the step is interrupted.
STOP_TIMEOUT_S = 25


@dataclass(frozen=True)
class NodeResult:
    """A node's outcome in one command: ``success`` / ``error`` / ``skipped`` for a model,
    ``pass`` / ``fail`` / ``warn`` / ``error`` / ``skipped`` for a test."""

    unique_id: str
    status: str
    #: Rows a test found failing (None for models).
    failures: int | None
    message: str | None
    execution_time_s: float


@dataclass(frozen=True)
class DbtCommand:
    """A finished dbt command."""

    args: tuple[str, ...]
    returncode: int
    results: tuple[NodeResult, ...]
    log_tail: str
    target_path: Path

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0

    def error_summary(self) -> str:
        """What went wrong, for an operator: each failed node's message, else dbt's last lines."""
        failed = [r for r in self.results if r.status in ("error", "fail")]
        lines = [f"dbt {' '.join(self.args[:1])} exited with code {self.returncode}."]
        lines += [f"- {r.unique_id}: {r.status}: {r.message}" for r in failed]
        if not failed:
            lines += ["dbt's last log lines:", self.log_tail]
        lines.append(f"Artifacts and dbt.log: {self.target_path}")
        return "\n".join(lines)


def run_dbt(
    executable: str,
    args: Sequence[str],
    *,
    project_dir: Path,
    profiles_dir: Path,
    target_path: Path,
    env: Mapping[str, str] | None = None,
) -> DbtCommand:
    """Run ``dbt <args>`` with its artifacts and log in ``target_path`` (a folder of its own, so
    commands running side by side never read each other's results).

    If this process is interrupted (a Dagster run terminated), dbt is asked to stop (SIGINT, as
    Ctrl-C: it cancels its queries) and given ``STOP_TIMEOUT_S`` before it is killed.
    """
    target_path.mkdir(parents=True, exist_ok=True)
    parse_cache = project_dir / "target" / PARTIAL_PARSE_FILE
    if parse_cache.exists() and not (target_path / PARTIAL_PARSE_FILE).exists():
        shutil.copy(parse_cache, target_path / PARTIAL_PARSE_FILE)
    command = [
        executable,
        *args,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path),
    ]
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    process = subprocess.Popen(
        command,
        cwd=project_dir,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip("\n"))
        returncode = process.wait()
    except BaseException:
        _stop(process)
        raise
    return DbtCommand(
        args=tuple(args),
        returncode=returncode,
        results=read_results(target_path / "run_results.json"),
        log_tail="\n".join(tail),
        target_path=target_path,
    )


def read_results(path: Path) -> tuple[NodeResult, ...]:
    """The node results of ``run_results.json``; none when dbt stopped before running a node."""
    if not path.exists():
        return ()
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    return tuple(
        NodeResult(
            unique_id=r["unique_id"],
            status=r["status"],
            failures=r.get("failures"),
            message=r.get("message"),
            execution_time_s=float(r.get("execution_time") or 0.0),
        )
        for r in results
    )


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
