"""Is the process that ran something still alive? (pid liveness that survives pid reuse)

Why: a run killed with SIGKILL cannot report its own end, so the next run has to decide from the
outside whether the processes it recorded are gone. ``os.kill(pid, 0)`` alone is not enough: after
a reboot or on a busy machine the pid may belong to an unrelated, newer process. A process that
started after the moment it was seen working cannot be the one that was seen, so liveness is
asked "as of" that moment, using the process start time from ``/proc`` where the platform has it.
"""

from __future__ import annotations

import os
import socket
from functools import cache
from pathlib import Path

#: Slack between a process's start time (clock-tick resolution) and an event it logged.
_START_SLACK_S = 2.0


def host_name() -> str:
    """The name this machine reports; pids only mean something on the host that recorded them."""
    return socket.gethostname()


def is_alive(pid: int, seen_at: float) -> bool:
    """True when process ``pid`` exists and already existed at ``seen_at`` (a Unix timestamp).

    A pid that exists but started after ``seen_at`` is a reused pid: the recorded process is gone.
    A zombie (killed, not yet reaped by its parent) runs nothing and counts as gone.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    if not _HAS_PROC:  # no start times on this platform: trust kill(0)
        return True
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):  # exited meanwhile, or a zombie
        return False
    return _start_time(fields) <= seen_at + _START_SLACK_S


def process_start_time(pid: int) -> float | None:
    """Unix time at which ``pid`` started (Linux ``/proc``), or None when unknown."""
    fields = _stat_fields(pid)
    return _start_time(fields) if fields is not None else None


_HAS_PROC = Path("/proc/self/stat").exists()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3… of ``/proc/<pid>/stat`` (state first), or None when the process is gone.

    The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _start_time(fields: list[str]) -> float:
    """Field 22 (starttime, clock ticks since boot) as a Unix time."""
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@cache
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("/proc/stat has no btime line")
