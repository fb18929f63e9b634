"""The training window: every day up to the cap, user-days sampled down to the row cap."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomaly_pipeline import warehouse
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.training_set import (
    FEATURES_TABLE,
    TrainingSetInfo,
    build_training_set,
    split_users,
)

DAYS = [date(2026, 9, 1) + timedelta(days=i) for i in range(10)]


def _feature_warehouse(tmp_path: Path, users_per_day: list[int]) -> Path:
    """A warehouse whose feature mart holds ``users_per_day[i]`` user-days on ``DAYS[i]``."""
    rng = np.random.default_rng(0)
    frames = [
        pl.DataFrame(
            {
                "user_key": [f"u{d}_{i}" for i in range(n)],
                "event_day": [day] * n,
                **{c: rng.normal(size=n) for c in FEATURE_COLUMNS},
            }
        )
        for d, (day, n) in enumerate(zip(DAYS, users_per_day, strict=True))
    ]
    path = tmp_path / "warehouse.duckdb"
    warehouse.replace_partitions(path, FEATURES_TABLE, pl.concat(frames), DAYS)
    return path


def test_every_day_is_kept_and_each_split_is_sampled_to_the_cap(tmp_path: Path) -> None:
    path = _feature_warehouse(tmp_path, [500, 40, 500, 500, 500, 500, 500, 500, 500, 500])
    info = build_training_set(
        path, DAYS, tmp_path / "ts", validation_days=1, holdout_days=2, max_rows=700
    )
    assert info.available_rows == {"train": 3040, "validation": 500, "holdout": 1000}
    assert info.rows["validation"] == 500  # under the cap: untouched
    train = pl.read_parquet(info.path("train"))
    per_day = dict(train.group_by("event_day").len().iter_rows())
    # 700 rows over 7 days: a quota of 100 per day, a small day keeps all of its user-days
    assert set(per_day) == set(DAYS[:7])
    assert per_day[DAYS[1]] == 40 and {per_day[d] for d in DAYS[:7] if d != DAYS[1]} == {100}
    assert info.rows["train"] == train.height == 640
    assert info.rows["holdout"] == 700 and train["user_key"].is_unique().all()
    assert TrainingSetInfo.read(info.directory) == info


def test_without_a_cap_every_user_day_is_kept(tmp_path: Path) -> None:
    path = _feature_warehouse(tmp_path, [30] * 10)
    info = build_training_set(
        path, DAYS, tmp_path / "ts", validation_days=2, holdout_days=3, max_rows=None
    )
    assert info.rows == info.available_rows == {"train": 150, "validation": 60, "holdout": 90}


def test_a_one_day_history_is_split_by_user(tmp_path: Path) -> None:
    path = _feature_warehouse(tmp_path, [1_000] + [0] * 9)
    info = build_training_set(path, DAYS[:1], tmp_path / "ts", validation_days=2, holdout_days=3)
    assert info.split_by == "user"
    assert info.days == {name: [DAYS[0].isoformat()] for name in ("train", "validation", "holdout")}
    assert sum(info.rows.values()) == sum(info.available_rows.values()) == 1_000
    assert info.rows["train"] > info.rows["holdout"] > 0 and info.rows["validation"] > 0
    assert TrainingSetInfo.read(info.directory) == info


def test_a_user_split_can_be_asked_for_on_a_long_history(tmp_path: Path) -> None:
    path = _feature_warehouse(tmp_path, [300] * 10)
    info = build_training_set(
        path, DAYS, tmp_path / "ts", validation_days=2, holdout_days=3, split_by="user"
    )
    assert info.split_by == "user"
    assert sum(info.rows.values()) == 3_000
    for split in ("train", "validation", "holdout"):
        # every day's population in each split, no user in two
        assert set(pl.read_parquet(info.path(split))["event_day"]) == set(DAYS)
    keys = [set(pl.read_parquet(info.path(s))["user_key"]) for s in ("train", "holdout")]
    assert not keys[0] & keys[1]


def test_a_time_split_too_long_for_the_window_is_refused(tmp_path: Path) -> None:
    path = _feature_warehouse(tmp_path, [50] * 10)
    with pytest.raises(ValueError, match="time split needs 2 validation \\+ 3 holdout"):
        build_training_set(
            path, DAYS[:5], tmp_path / "ts", validation_days=2, holdout_days=3, split_by="time"
        )
    assert not (tmp_path / "ts").exists()


def test_a_history_too_short_for_a_time_split_is_split_by_user() -> None:
    frame = pl.DataFrame(
        {
            "user_key": [f"u{i}" for i in range(2_000)],
            "event_day": [date(2017, 11, 26)] * 2_000,
            "label": [None] * 2_000,
        },
        schema_overrides={"label": pl.Int8},
    )
    splits = split_users(frame)
    users = {name: set(part["user_key"]) for name, part in splits.items()}
    assert sum(len(u) for u in users.values()) == 2_000  # every user in one split
    assert not (
        users["train"] & users["validation"]
        or users["train"] & users["holdout"]
        or users["validation"] & users["holdout"]
    )
    assert 0.55 < len(users["train"]) / 2_000 < 0.75
    assert 0.10 < len(users["validation"]) / 2_000 < 0.20
    assert 0.15 < len(users["holdout"]) / 2_000 < 0.25
    assert split_users(frame)["holdout"].equals(splits["holdout"])  # repeatable
