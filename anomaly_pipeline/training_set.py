"""The training set: a window of feature days, joined with sequences and labels, split by time.

Why a time split (train → validation → holdout, oldest to newest) and not a random one: a model
is always applied to days after the ones it learnt from, and behaviour drifts; a random split would
leak tomorrow's patterns into training and flatter the evaluation. Only a history too short for a
time split (a user's first day or two, e.g. the one-day Taobao sample) is split by user instead,
so that onboarding any history still ends with a champion; the set records which split it used.
A caller may ask for the user split on a longer history too: onboarding does when a time split
would train only on a fresh history's first days, whose trailing-window features (no history yet)
look like no later day — a model trained on them flags a third of every later day.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from functools import partial
from pathlib import Path

import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, KEY_COLUMNS
from anomaly_pipeline.feedback import FEEDBACK_SCHEMA, FEEDBACK_TABLE
from anomaly_pipeline.labels import user_day_labels
from anomaly_pipeline.model_refs import INFO_FILE, SplitBy, TrainingSetInfo

FEATURES_TABLE = "features.user_day_features"
SEQUENCES_TABLE = "features.behaviour_sequences"
LABELS_TABLE = "features.stg_labels"
COVERAGE_TABLE = "raw.label_coverage"
STG_EVENTS_TABLE = "features.stg_events"
#: Event-level columns whose unseen values signal drift (new channel, new event type).
CATEGORICAL_COLUMNS = ("channel", "event_type")
SEQUENCE_COLUMNS = ("tokens", "log_gaps", "category_change")
SPLITS = ("train", "validation", "holdout")
#: Shares of users in validation and holdout when a short history is split by user.
USER_SPLIT_SHARES = {"validation": 0.15, "holdout": 0.20}


def feature_days(warehouse_path: Path) -> list[date]:
    """Days present in the feature mart, oldest first."""
    if not Path(warehouse_path).exists():
        return []
    with warehouse.connect(warehouse_path, read_only=True) as conn:
        if not warehouse.table_exists(conn, FEATURES_TABLE):
            return []
        rows = conn.execute(
            f"SELECT DISTINCT event_day FROM {FEATURES_TABLE} ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def split_days(
    days: list[date], *, validation_days: int, holdout_days: int
) -> dict[str, list[date]]:
    """Oldest days train, then validation, newest holdout; at least one training day."""
    if len(days) < validation_days + holdout_days + 1:
        raise ValueError(
            f"{len(days)} feature day(s) cannot hold {validation_days} validation + "
            f"{holdout_days} holdout day(s) and one training day; "
            "materialise more days"
        )
    n_train = len(days) - validation_days - holdout_days
    return {
        "train": days[:n_train],
        "validation": days[n_train : n_train + validation_days],
        "holdout": days[n_train + validation_days :],
    }


def split_users(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every user's rows in exactly one split, chosen by a seeded hash of the user key.

    A user never sits in two splits, so the holdout still measures users the model has not seen;
    the hash (polars' seeded ``hash``) repeats within one install, not across polars versions.
    """
    bucket = (pl.col("user_key").hash(seed=7) % 10_000).cast(pl.Float64) / 10_000
    holdout_from = 1.0 - USER_SPLIT_SHARES["holdout"]
    validation_from = holdout_from - USER_SPLIT_SHARES["validation"]
    tagged = frame.with_columns(_bucket=bucket)
    return {
        "train": tagged.filter(pl.col("_bucket") < validation_from).drop("_bucket"),
        "validation": tagged.filter(
            pl.col("_bucket").is_between(validation_from, holdout_from, closed="left")
        ).drop("_bucket"),
        "holdout": tagged.filter(pl.col("_bucket") >= holdout_from).drop("_bucket"),
    }


def load_user_days(
    warehouse_path: Path, days: list[date], *, with_sequences: bool = True
) -> pl.DataFrame:
    """Features + sequences + label columns for ``days`` of the warehouse (``user_days_from``)."""
    return user_days_from(
        partial(warehouse.read_days, warehouse_path), days, with_sequences=with_sequences
    )


def user_days_from(
    read: warehouse.DayReader, days: Sequence[date], *, with_sequences: bool = True
) -> pl.DataFrame:
    """Features + sequences + label columns for ``days``, read with ``read``, sorted by the keys.

    ``label`` comes from ``labels.user_day_labels`` (source labels and analyst verdicts, with
    their precedence) where a user-day has one; else it is 0 on a day a label file covers
    (labelled, no abnormal user) and null on days with no ground truth. A verdict labels its
    user-day even on a day without a label file. ``label_source`` says which kind decided.
    ``with_sequences=False`` leaves the sequence columns out (only sequence models read them;
    they are the largest columns).
    """
    features = read(FEATURES_TABLE, days, columns=[*KEY_COLUMNS, *FEATURE_COLUMNS])
    sequences = (
        read(SEQUENCES_TABLE, days, columns=[*KEY_COLUMNS, *SEQUENCE_COLUMNS])
        if with_sequences
        else pl.DataFrame()
    )
    source = read(LABELS_TABLE, days, columns=[*KEY_COLUMNS, "anomaly_type"])
    verdicts = read(FEEDBACK_TABLE, days)
    coverage = read(COVERAGE_TABLE, days, columns=["event_day", "labelled"])
    if features.is_empty():
        raise ValueError(f"no feature rows for {days[0]}..{days[-1]}")
    frame = (
        features.join(sequences, on=list(KEY_COLUMNS), how="left")
        if not sequences.is_empty()
        else features
    )
    if source.is_empty():
        source = pl.DataFrame(
            schema={"user_key": pl.String, "event_day": pl.Date, "anomaly_type": pl.String}
        )
    if verdicts.is_empty():
        verdicts = pl.DataFrame(schema=FEEDBACK_SCHEMA)
    if coverage.is_empty():
        coverage = pl.DataFrame(schema={"event_day": pl.Date, "labelled": pl.Boolean})
    frame = (
        frame.join(user_day_labels(source, verdicts), on=list(KEY_COLUMNS), how="left")
        .join(coverage, on="event_day", how="left")
        .with_columns(
            label=pl.when(pl.col("label").is_not_null())
            .then(pl.col("label"))
            .when(pl.col("labelled"))
            .then(0)
            .otherwise(None)
            .cast(pl.Int8)
        )
        .drop("labelled")
    )
    return frame.sort(list(KEY_COLUMNS))


def load_capped(
    warehouse_path: Path, days: list[date], max_rows: int | None, seed: int = 0
) -> tuple[pl.DataFrame, int]:
    """``load_user_days`` of ``days``, sampled down to about ``max_rows``; also the rows available.

    Beyond the cap every day keeps an equal quota (a random sample of its user-days, seeded),
    so a long window stays a window of all its days rather than of its busiest ones, and the
    days are read one at a time so memory follows the cap, not the window.
    """
    available = sum(warehouse.count_by_day(warehouse_path, FEATURES_TABLE, days).values())
    if max_rows is None or available <= max_rows:
        return load_user_days(warehouse_path, days), available
    quota = max(1, max_rows // len(days))
    parts = []
    for day in days:
        frame = load_user_days(warehouse_path, [day])
        parts.append(frame.sample(min(quota, frame.height), seed=seed))
    return pl.concat(parts, how="diagonal_relaxed").sort(list(KEY_COLUMNS)), available


def category_counts(warehouse_path: Path, days: list[date], column: str) -> dict[str | None, int]:
    """Events on ``days`` per value of a categorical ``column`` (None: null): the categories
    training saw, and a day's unseen share."""
    return warehouse.value_counts(warehouse_path, STG_EVENTS_TABLE, days, column)


def build_training_set(
    warehouse_path: Path,
    days: list[date],
    out_dir: Path,
    *,
    validation_days: int,
    holdout_days: int,
    max_rows: int | None = None,
    split_by: SplitBy = "auto",
) -> TrainingSetInfo:
    """Write ``train/validation/holdout.parquet`` and ``training_set.json`` into ``out_dir``.

    ``max_rows`` caps the user-days of each split (``load_capped``); None keeps them all.
    ``split_by="auto"`` splits a window shorter than ``validation_days + holdout_days + 1`` days
    by user (``split_users``) and a longer one by time; ``"user"`` splits any window by user
    (every day's population in each split); ``"time"`` refuses a window too short for it.
    """
    time_split_fits = len(days) >= validation_days + holdout_days + 1
    if split_by == "time" and not time_split_fits:
        raise ValueError(
            f"a time split needs {validation_days} validation + {holdout_days} holdout day(s) and "
            f"a training day; the window has {len(days)} day(s) (split_by 'auto' or 'user' "
            "splits it by user)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, labelled, abnormal, available = {}, {}, {}, {}
    frames: dict[str, pl.DataFrame] = {}
    if split_by == "time" or (split_by == "auto" and time_split_fits):
        split_by = "time"
        split = split_days(days, validation_days=validation_days, holdout_days=holdout_days)
        for name, split_day_list in split.items():
            frames[name], available[name] = load_capped(warehouse_path, split_day_list, max_rows)
    else:
        split_by = "user"
        split = {name: list(days) for name in SPLITS}
        whole, total = load_capped(warehouse_path, days, max_rows)
        frames = split_users(whole)
        available = {
            name: round(total * frame.height / max(whole.height, 1))
            for name, frame in frames.items()
        }
    for name, frame in frames.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
        rows[name] = frame.height
        labelled[name] = int(frame["label"].is_not_null().sum())
        abnormal[name] = int((frame["label"] == 1).sum())
    info = TrainingSetInfo(
        directory=str(out_dir),
        days={k: [d.isoformat() for d in v] for k, v in split.items()},
        rows=rows,
        labelled_rows=labelled,
        abnormal_rows=abnormal,
        feature_names=list(FEATURE_COLUMNS),
        categories={
            c: sorted(
                v for v in category_counts(warehouse_path, split["train"], c) if v is not None
            )
            for c in CATEGORICAL_COLUMNS
        },
        available_rows=available,
        split_by=split_by,
    )
    (out_dir / INFO_FILE).write_text(json.dumps(asdict(info), indent=2))
    return info
