"""Scoring user-days with the champion bundle: points, flag, reasons, outcome, model version.

Plain functions so that the daily asset, the demo and the tests score the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from anomaly_pipeline import warehouse
from anomaly_pipeline.alert_guard import (
    GUARD_SCHEMA,
    GUARD_TABLE,
    GuardLimits,
    GuardVerdict,
    judge_day,
    verdict_rows,
)
from anomaly_pipeline.bundle import ScoringBundle, detector_input
from anomaly_pipeline.detectors.registry import SEQUENCE_KINDS
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, KEY_COLUMNS
from anomaly_pipeline.policy import Policy
from anomaly_pipeline.training_set import FEATURES_TABLE, user_days_from

SCORES_TABLE = "scoring.daily_anomaly_scores"
TOP_REASONS = 3

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "user_key": pl.String(),
    "event_day": pl.Date(),
    "score": pl.Float64(),
    "raw_score": pl.Float64(),
    "flagged": pl.Boolean(),
    "threshold": pl.Float64(),
    "reasons": pl.List(pl.String()),
    "reason_codes": pl.List(pl.String()),
    "outcome": pl.String(),
    "matched_rule": pl.String(),
    "model_name": pl.String(),
    "model_version": pl.String(),
    "model_kind": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class ModelIdentity:
    """Which registered model version produced the scores (stored on every row)."""

    name: str
    version: str
    kind: str


def score_user_days(
    bundle: ScoringBundle,
    frame: pl.DataFrame,
    policy: Policy,
    model: ModelIdentity,
    *,
    scored_at: datetime | None = None,
) -> pl.DataFrame:
    """Score ``frame`` (features, plus sequence columns for sequence models) → ``SCORE_SCHEMA``.

    ``flagged`` holds exactly when the 0–1000 score is at or above the model's threshold on that
    scale (equal raw scores get equal points, so ties are flagged alike), and the policy's bands
    agree with it (``Policy.apply`` with the flag); hard rules may still be stricter than the
    flag (a hard rule can block an unflagged user, naming itself in ``matched_rule``).
    """
    if frame.is_empty():
        return pl.DataFrame(schema=SCORE_SCHEMA)
    return _decide(
        bundle, frame, _detect(bundle, frame), policy, model, scored_at or datetime.now(UTC)
    )


@dataclass(frozen=True)
class _Detection:
    """What the detector says of a frame's rows: raw scores and, for a tabular detector, each
    feature's contribution (the reason coder's candidates)."""

    raw: np.ndarray
    contributions: np.ndarray | None


def _detect(bundle: ScoringBundle, frame: pl.DataFrame) -> _Detection:
    detector = bundle.detector
    raw = np.asarray(bundle.raw_scores(frame), dtype=np.float64)
    contributions = (
        None
        if detector.kind in SEQUENCE_KINDS
        else detector.feature_contributions(detector_input(detector, frame))
    )
    return _Detection(raw, contributions)


def _decide(
    bundle: ScoringBundle,
    frame: pl.DataFrame,
    detection: _Detection,
    policy: Policy,
    model: ModelIdentity,
    scored_at: datetime,
) -> pl.DataFrame:
    """The score rows of ``frame`` from the detector's ``detection``: points, flag, reasons,
    outcome and model identity."""
    points = bundle.scaler.transform(detection.raw)
    explanation = bundle.reasons.explain(
        frame.select(FEATURE_COLUMNS), detection.contributions, top_k=TOP_REASONS
    )
    scored = frame.select(*KEY_COLUMNS, *FEATURE_COLUMNS).with_columns(
        score=pl.Series(points, dtype=pl.Float64),
        raw_score=pl.Series(detection.raw, dtype=pl.Float64),
        flagged=pl.Series(points >= bundle.threshold_points, dtype=pl.Boolean),
        threshold=pl.lit(bundle.threshold_points, dtype=pl.Float64),
        reasons=explanation.text_column(),
        reason_codes=explanation.code_column(),
    )
    decided = policy.apply(scored, score_column="score", flag_column="flagged")
    return decided.with_columns(
        model_name=pl.lit(model.name),
        model_version=pl.lit(model.version),
        model_kind=pl.lit(model.kind),
        scored_at=pl.lit(scored_at).cast(pl.Datetime("us", "UTC")),
    ).select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items())


#: User-days scored at a time: the reasons, outcomes and score rows of one batch are what a day's
#: scoring holds in memory beyond its features.
SCORING_BATCH_ROWS = 100_000


def score_batches(
    bundle: ScoringBundle,
    frame: pl.DataFrame,
    policy: Policy,
    model: ModelIdentity,
    *,
    scored_at: datetime | None = None,
    batch_rows: int = SCORING_BATCH_ROWS,
) -> Iterator[pl.DataFrame]:
    """``score_user_days`` over consecutive slices of ``batch_rows`` rows of ``frame``.

    Every step of scoring is per row (the detector, the fitted scale, the reason coder's fitted
    statistics, the policy), so the batches concatenated are the rows of one call over the whole
    frame; only the memory of one batch's reasons and outcomes (and the next batch's raw scores)
    is held at a time.

    The detector scores the next batch in a background thread while this one's reasons,
    outcomes and rows are built: the forest, neighbour and torch kernels release the GIL, so on
    two cores the two overlap (on a 10 M-event day the IsolationForest took ≈ 7.5 s, the reasons
    ≈ 2–3 s, the rest of a batch's rows about as much again).
    """
    scored_at = scored_at or datetime.now(UTC)
    batches = [frame.slice(start, batch_rows) for start in range(0, frame.height, batch_rows)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector") as detector:
        pending = detector.submit(_detect, bundle, batches[0])
        for batch, following in zip(batches, [*batches[1:], None], strict=True):
            detection = pending.result()
            if following is not None:
                pending = detector.submit(_detect, bundle, following)
            yield _decide(bundle, batch, detection, policy, model, scored_at)


@dataclass(frozen=True)
class GuardInput:
    """What the alert guard judges each scored day against (``alert_guard.judge_day``): the
    champion's training raw scores, the limits, and the threshold's percentile."""

    reference: np.ndarray
    limits: GuardLimits
    threshold_percentile: float


def write_scores(
    warehouse_path: Path,
    days: Sequence[date],
    bundle: ScoringBundle,
    policy: Policy,
    model: ModelIdentity,
    guard: GuardInput,
    *,
    scored_at: datetime | None = None,
    batch_rows: int = SCORING_BATCH_ROWS,
    days_per_chunk: int = 1,
) -> tuple[DayTally, dict[date, GuardVerdict]]:
    """Replace ``days`` of ``SCORES_TABLE`` with the scores of their user-days and of
    ``GUARD_TABLE`` with each day's guard verdict; returns the range's tally and verdicts.

    The range is read and scored ``days_per_chunk`` days at a time, so memory follows a chunk:
    its user-days (``training_set.user_days_from``, sequence columns only for a sequence model)
    and one batch of ``batch_rows`` scores. Scoring is per row and the verdicts per day, so the
    rows are those of one call over the whole range (floats to the last bit BLAS rounds by the
    batch's shape, as ``score_batches``). One ``partition_writer`` takes every chunk (staged and
    committed as it comes) and publishes the range at the end, scores with their verdicts: a
    failure changes nothing. A range without any feature row raises ``ValueError``; days without
    feature rows get no scores and a verdict on zero user-days.
    """
    counts = warehouse.count_by_day(warehouse_path, FEATURES_TABLE, days)
    if not any(counts.values()):
        raise ValueError(f"no feature rows for {days[0]}..{days[-1]}")
    scored_at = scored_at or datetime.now(UTC)
    tally = DayTally()
    verdicts: dict[date, GuardVerdict] = {}
    output = {SCORES_TABLE: SCORE_SCHEMA, GUARD_TABLE: GUARD_SCHEMA}
    with warehouse.partition_writer(warehouse_path, output, days, keep_row_order=False) as writer:
        for chunk in warehouse.day_chunks(days, days_per_chunk):
            scored_days = [day for day in chunk if counts[day]]
            frame = (
                user_days_from(
                    partial(warehouse.read_days_in, writer),
                    scored_days,
                    with_sequences=bundle.detector.kind in SEQUENCE_KINDS,
                )
                if scored_days
                else pl.DataFrame()
            )
            for scores in score_batches(
                bundle, frame, policy, model, scored_at=scored_at, batch_rows=batch_rows
            ):
                writer.insert(SCORES_TABLE, scores)
                tally.add(scores)
            for day in chunk:
                rows = tally.rows(day)
                verdicts[day] = judge_day(
                    day,
                    rows["flagged"].to_numpy(),
                    rows["raw_score"].to_numpy(),
                    guard.reference,
                    limits=guard.limits,
                    threshold_percentile=guard.threshold_percentile,
                )
            writer.insert(
                GUARD_TABLE, verdict_rows([verdicts[day] for day in chunk], model.version)
            )
    return tally, verdicts


@dataclass
class DayTally:
    """What each day's alert guard and summary need from its score rows, gathered batch by
    batch: every row's raw score, flag and outcome (a few bytes a row), and the day's
    ``top_n`` highest-scored rows with their reasons (ties by user key)."""

    top_n: int = 10
    _rows: list[pl.DataFrame] = field(default_factory=list)
    _top: list[pl.DataFrame] = field(default_factory=list)

    ROW_COLUMNS = ("event_day", "raw_score", "flagged", "outcome")
    TOP_COLUMNS = ("user_key", "event_day", "score", "outcome", "reasons")
    # Equal scores in user order, so the top rows do not depend on how the day was batched.
    _ORDER = ("score", "user_key")
    _DESCENDING = (True, False)

    def add(self, scores: pl.DataFrame) -> None:
        self._rows.append(scores.select(self.ROW_COLUMNS))
        top = (
            scores.select(self.TOP_COLUMNS)
            .sort(self._ORDER, descending=self._DESCENDING)
            .group_by("event_day", maintain_order=True)
            .head(self.top_n)
            .select(self.TOP_COLUMNS)
        )
        # Rebuilt from Python values: polars' slices and gathers of string columns keep the
        # batch's whole string buffers (every row's reasons) alive, and a 30-day range's scoring
        # grew by ≈ 90 MiB a day (3.7 GiB in all) holding a few rows a day.
        self._top.append(pl.DataFrame(top.rows(), schema=top.schema, orient="row"))

    def rows(self, day: date) -> pl.DataFrame:
        """The day's raw score, flag and outcome of every row."""
        return _of_day(self._rows, day, self.ROW_COLUMNS)

    def top(self, day: date) -> pl.DataFrame:
        """The day's ``top_n`` rows by score, highest first."""
        top = _of_day(self._top, day, self.TOP_COLUMNS)
        return top.sort(self._ORDER, descending=self._DESCENDING).head(self.top_n)


def _of_day(parts: list[pl.DataFrame], day: date, columns: tuple[str, ...]) -> pl.DataFrame:
    empty = pl.DataFrame(schema={c: SCORE_SCHEMA[c] for c in columns})
    return pl.concat([empty, *parts]).filter(pl.col("event_day") == day)


def evaluation_frame(bundle: ScoringBundle, frame: pl.DataFrame) -> pl.DataFrame:
    """Points of ``frame``'s user-days beside their labels, the input of ``evaluate_detector``."""
    points = bundle.scaler.transform(np.asarray(bundle.raw_scores(frame), dtype=np.float64))
    return frame.select(*KEY_COLUMNS, "label", "anomaly_type").with_columns(
        score=pl.Series(points, dtype=pl.Float64)
    )
