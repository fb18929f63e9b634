"""Validation of the scored held-out frame every evaluation starts from.

The Dagster layer hands over one polars frame per detector: ``user_key, event_day, score, label,
anomaly_type``. Metrics computed over a malformed frame are silently wrong (a duplicated user-day
counts twice, a NaN score sorts anywhere), so the frame is checked up front and every failure names
the column and the rule it broke.
"""

from __future__ import annotations

import hashlib
from typing import Final

import polars as pl

KEY_COLUMNS: Final[tuple[str, str]] = ("user_key", "event_day")
SCORED_COLUMNS: Final[tuple[str, ...]] = (*KEY_COLUMNS, "score", "label", "anomaly_type")


class ScoredFrameError(ValueError):
    """The scored frame breaks the evaluation input contract."""


def _require_columns(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ScoredFrameError(f"{what} lacks column(s) {missing}; has {frame.columns}")


def _check_keys_and_score(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    """Check and normalise ``user_key``, ``event_day`` and ``score``; return the three columns."""
    if frame.height == 0:
        raise ScoredFrameError(f"{what} has no rows: there is nothing to evaluate")
    if frame.schema["event_day"] != pl.Date:
        raise ScoredFrameError(
            f"{what} column 'event_day' must be a Date, got {frame.schema['event_day']}"
        )
    if not frame.schema["score"].is_numeric():
        raise ScoredFrameError(
            f"{what} column 'score' must be numeric, got {frame.schema['score']}"
        )
    out = frame.select(
        pl.col("user_key").cast(pl.String), pl.col("event_day"), pl.col("score").cast(pl.Float64)
    )
    for name in KEY_COLUMNS:
        nulls = out[name].null_count()
        if nulls:
            raise ScoredFrameError(f"{what} column {name!r} must not be null ({nulls} null rows)")
    bad_scores = out.filter(pl.col("score").is_null() | ~pl.col("score").is_finite()).height
    if bad_scores:
        raise ScoredFrameError(
            f"{what} column 'score' must be a finite number on every row "
            f"({bad_scores} rows are null, NaN or infinite)"
        )
    duplicated = out.select(pl.struct(KEY_COLUMNS).is_duplicated().sum()).item()
    if duplicated:
        raise ScoredFrameError(
            f"{what} columns {list(KEY_COLUMNS)} must be unique per row "
            f"({duplicated} rows share a user-day)"
        )
    return out


def _normalise_label(frame: pl.DataFrame) -> pl.Series:
    """``label`` as Int8 with values 0/1/null; booleans and 0.0/1.0 floats are accepted."""
    label = frame["label"]
    if label.dtype == pl.Null:
        return pl.Series("label", [None] * frame.height, dtype=pl.Int8)
    if not (label.dtype == pl.Boolean or label.dtype.is_numeric()):
        raise ScoredFrameError(
            f"column 'label' must be 0/1 (or boolean) or null, got {label.dtype}"
        )
    invalid = label.drop_nulls().cast(pl.Float64).is_in([0.0, 1.0]).not_().sum()
    if invalid:
        raise ScoredFrameError(
            f"column 'label' must be 0, 1 or null ({invalid} rows hold other values)"
        )
    return label.cast(pl.Int8)


def _normalise_anomaly_type(frame: pl.DataFrame) -> pl.Series:
    anomaly_type = frame["anomaly_type"]
    if anomaly_type.dtype == pl.Null:
        return pl.Series("anomaly_type", [None] * frame.height, dtype=pl.String)
    if anomaly_type.dtype not in (pl.String, pl.Categorical) and not isinstance(
        anomaly_type.dtype, pl.Enum
    ):
        raise ScoredFrameError(
            f"column 'anomaly_type' must be a string or null, got {anomaly_type.dtype}"
        )
    return anomaly_type.cast(pl.String)


def validate_scored_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Check a scored held-out frame and return it normalised.

    Rules: the five columns exist; ``event_day`` is a Date; keys are non-null and each
    (user_key, event_day) appears once; ``score`` is finite on every row; ``label`` is 0, 1 or null
    (unknown); ``anomaly_type`` is a string and is set only where ``label`` is 1 (a labelled-normal
    or unlabelled row with a type is a contradiction in the upstream join). A positive without a
    type is allowed: it counts in overall recall but in no per-type recall.

    The result has exactly ``SCORED_COLUMNS`` (String, Date, Float64, Int8, String), sorted by
    descending score with the keys as tie-breakers, so every consumer sees the same row order.
    """
    _require_columns(frame, SCORED_COLUMNS, "scored frame")
    base = _check_keys_and_score(frame, "scored frame")
    out = base.with_columns(_normalise_label(frame), _normalise_anomaly_type(frame))
    contradictory = out.filter(
        pl.col("anomaly_type").is_not_null() & (pl.col("label").is_null() | (pl.col("label") == 0))
    ).height
    if contradictory:
        raise ScoredFrameError(
            f"column 'anomaly_type' may only be set where 'label' is 1 "
            f"({contradictory} rows have a type but label 0 or null)"
        )
    return out.sort(["score", "event_day", "user_key"], descending=[True, False, False])


def validate_previous_scores(frame: pl.DataFrame) -> pl.DataFrame:
    """Check a previous model's scores (``user_key, event_day, score``) used for stability."""
    _require_columns(frame, ("user_key", "event_day", "score"), "previous scores frame")
    return _check_keys_and_score(frame, "previous scores frame")


def holdout_fingerprint(scored: pl.DataFrame) -> str:
    """SHA-256 of the held-out rows' keys and labels (not the scores).

    Two evaluations are comparable only if they cover the same user-days with the same labels;
    the champion gate compares fingerprints instead of trusting that the caller got this right.
    """
    rows = scored.select(SCORED_COLUMNS[:2] + SCORED_COLUMNS[3:]).sort(list(KEY_COLUMNS))
    return hashlib.sha256(rows.write_csv().encode()).hexdigest()
