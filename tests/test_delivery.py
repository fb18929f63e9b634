"""The delivery convention: patterns stay inside the landing folder, in-progress names are never
read, and a file that changes while it is watched is still being written."""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

import pytest

from anomaly_pipeline.delivery import (
    FileStillBeingWrittenError,
    LandingPathError,
    MissingLandingFileError,
    check_pattern,
    day_files,
    require_day_files,
    wait_until_settled,
)

DAY = date(2026, 10, 3)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "events"
    folder.mkdir(parents=True)
    return folder


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("events.csv", "must contain {day}"),
        ("../../../secret/creds_{day}.csv", "no '..'"),
        ("{day}/../../creds.csv", "no '..'"),
        ("/etc/{day}.csv", "relative pattern"),
        ("~/{day}.csv", "relative pattern"),
        ("events_{day}_{shop}.csv", "unknown placeholder(s) ['shop']"),
        ("events_{day.csv", "not a valid pattern"),
    ],
)
def test_bad_patterns_are_refused(pattern: str, problem: str) -> None:
    with pytest.raises(LandingPathError) as error:
        check_pattern(pattern)
    assert problem in str(error.value)


def test_in_progress_names_are_not_read(landing: Path) -> None:
    for name in (
        f"events_{DAY}.csv",
        f".events_{DAY}.csv",
        f"events_{DAY}.csv.part",
        f"events_{DAY}.csv.tmp",
        f"events_{DAY}.PARTIAL",
    ):
        (landing / name).write_text("x\n")
    assert [p.name for p in day_files(landing, "events_{day}*", DAY)] == [f"events_{DAY}.csv"]
    (landing / f"events_{DAY}.csv").unlink()
    with pytest.raises(MissingLandingFileError, match=f"no landing file for {DAY}"):
        require_day_files(landing, "events_{day}*", DAY)


def test_a_link_out_of_the_landing_folder_is_refused(landing: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    (landing / f"events_{DAY}.csv").symlink_to(secret)
    with pytest.raises(LandingPathError, match="resolve outside") as error:
        day_files(landing, "events_{day}.csv", DAY)
    assert "hunter2" not in str(error.value)


def test_subfolders_per_day_are_allowed(landing: Path) -> None:
    (landing / DAY.isoformat()).mkdir()
    (landing / DAY.isoformat() / "part-1.csv").write_text("x\n")
    assert [p.name for p in day_files(landing, "{day}/*.csv", DAY)] == ["part-1.csv"]


def test_a_file_that_grows_while_watched_is_still_being_written(landing: Path) -> None:
    path = landing / f"events_{DAY}.csv"
    path.write_text("event_id\ne1\n")
    slept: list[float] = []

    def copy_goes_on(seconds: float) -> None:  # the writer appends while we wait
        slept.append(seconds)
        with path.open("a") as handle:
            handle.write("e2\n")

    with pytest.raises(FileStillBeingWrittenError, match="still being written"):
        wait_until_settled([path], settle_s=5, sleep=copy_goes_on)
    assert 0 < slept[0] <= 5


def test_a_quiet_recent_file_is_read_after_the_wait_and_an_old_one_at_once(landing: Path) -> None:
    recent, old = landing / f"events_{DAY}.csv", landing / "events_2026-10-02.csv"
    recent.write_text("event_id\ne1\n")
    old.write_text("event_id\ne1\n")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    slept: list[float] = []
    wait_until_settled([recent, old], settle_s=5, sleep=slept.append)
    assert len(slept) == 1 and 0 < slept[0] <= 5
    wait_until_settled([old], settle_s=5, sleep=slept.append)
    assert len(slept) == 1
