"""The delivery convention: which landing files feed a partition day, and when they are complete.

Why a module of its own: a landing pattern comes from the Launchpad, so it is untrusted input, and
a file is only worth reading once its writer has finished. The rules, in the order they apply:

* **Paths.** ``file_pattern`` is a glob relative to the landing folder that contains ``{day}``
  (replaced by the partition's ``YYYY-MM-DD``), with no absolute path, no ``..`` and no other
  ``{…}`` placeholder; every file it matches must resolve (symbolic links followed) inside the
  landing folder. A pattern that breaks a rule fails before any file is read.
* **In-progress names.** Deliver by writing under a temporary name and renaming (one atomic step):
  hidden names (``.events_<day>.csv``) and names ending in ``.tmp``, ``.part``, ``.partial`` or
  ``.inprogress`` are deliveries still being written and are never read.
* **Stable size.** A file modified less than ``settle_s`` seconds ago is watched until it is that
  old; if its size or modification time changes meanwhile it is still being copied, and the load
  fails with ``FileStillBeingWrittenError`` (nothing is written; re-run the day when the copy is
  done — the landing sensor requests that run by itself when the file's modification time
  settles).
"""

from __future__ import annotations

import string
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path, PurePath
from typing import Final

DAY_FIELD: Final = "day"
IN_PROGRESS_SUFFIXES: Final[tuple[str, ...]] = (".tmp", ".part", ".partial", ".inprogress")
#: Seconds a file must stay unchanged before it is read (when it was modified more recently).
DEFAULT_SETTLE_S: Final = 2.0


class LandingPathError(ValueError):
    """A landing pattern (or what it matches) reaches outside the landing folder."""


class MissingLandingFileError(FileNotFoundError):
    """A partition day has no landing file: the day cannot be materialised yet."""


class FileStillBeingWrittenError(RuntimeError):
    """A landing file changed while it was being checked: its delivery is not finished."""


def check_pattern(pattern: str) -> None:
    """Raise ``LandingPathError`` unless ``pattern`` is a relative glob with ``{day}`` that stays
    inside the folder it is applied to."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as error:
        raise LandingPathError(
            f"file_pattern {pattern!r} is not a valid pattern ({error})"
        ) from None
    if DAY_FIELD not in fields:
        raise LandingPathError(
            f"file_pattern {pattern!r} must contain {{day}} (the partition's "
            "YYYY-MM-DD), so that each day reads only its own files"
        )
    others = sorted(set(fields) - {DAY_FIELD})
    if others:
        raise LandingPathError(
            f"file_pattern {pattern!r} has unknown placeholder(s) {others}; "
            "only {day} is replaced"
        )
    path = PurePath(pattern)
    if path.is_absolute() or pattern.startswith(("/", "\\", "~")) or ".." in path.parts:
        raise LandingPathError(
            f"file_pattern {pattern!r} must be a relative pattern inside the "
            "landing folder (no absolute path, no '..', no '~')"
        )


def is_in_progress(path: Path) -> bool:
    """Whether ``path`` names a delivery still being written (hidden or temporary name)."""
    return path.name.startswith(".") or path.name.lower().endswith(IN_PROGRESS_SUFFIXES)


def day_files(directory: Path, pattern: str, day: date) -> list[Path]:
    """The complete-named files of ``directory`` matching ``pattern`` for ``day`` (may be none).

    Raises ``LandingPathError`` for a bad pattern or a match that resolves outside ``directory``.
    """
    check_pattern(pattern)
    root = directory.resolve()
    matches = sorted(
        p
        for p in directory.glob(pattern.format(day=day.isoformat()))
        if not any(is_in_progress(Path(part)) for part in p.relative_to(directory).parts)
    )
    outside = [p.relative_to(directory) for p in matches if not p.resolve().is_relative_to(root)]
    if outside:
        raise LandingPathError(
            f"file_pattern {pattern!r} matches {len(outside)} file(s) that "
            f"resolve outside {directory} (e.g. {str(outside[0])!r}); only "
            "files inside the landing folder are read"
        )
    return [p for p in matches if p.is_file()]


def require_day_files(directory: Path, pattern: str, day: date) -> list[Path]:
    """``day_files``, raising ``MissingLandingFileError`` when there is none."""
    files = day_files(directory, pattern, day)
    if not files:
        raise MissingLandingFileError(
            f"no landing file for {day} matching {pattern.format(day=day.isoformat())!r} in "
            f"{directory} (files still being delivered under a temporary name are not counted)"
        )
    return files


def wait_until_settled(
    paths: Sequence[Path],
    settle_s: float = DEFAULT_SETTLE_S,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once no file of ``paths`` was modified in the last ``settle_s`` seconds.

    Files modified more recently are watched (one shared wait, at most ``settle_s``); a change of
    size or modification time meanwhile raises ``FileStillBeingWrittenError`` naming the files.
    """
    if settle_s <= 0 or not paths:
        return
    before = {path: _signature(path) for path in paths}
    now = clock()
    young = [path for path, (_, mtime_ns) in before.items() if now - mtime_ns / 1e9 < settle_s]
    if not young:
        return
    newest = max(before[path][1] / 1e9 for path in young)
    sleep(min(settle_s, max(0.0, newest + settle_s - now)))
    changed = [path.name for path in young if _signature(path) != before[path]]
    if changed:
        raise FileStillBeingWrittenError(
            f"landing file(s) {changed} changed during the last {settle_s:g} s: still being "
            "written. Nothing was read; deliver under a temporary name and rename when complete, "
            "then re-run the day"
        )


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns
