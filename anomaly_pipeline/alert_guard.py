"""The alert guard: a day whose scores look nothing like the champion's training data gets scores,
not alerts.

Why: a champion applied to a source it never saw (another shop, another timezone, a broken
feed) ranks *everything* as unusual. Scoring such a day is harmless — the scores are kept for
analysis — but alerting on it floods the review queue (66,454 alerts for 66,454 users on a
real day). Two symptoms give it away, each judged per day so that one bad day in a backfill
withholds only its own alerts:

* the flagged share far above what the threshold promises (the threshold sits at the
  ``threshold_percentile`` of the training scores, so about ``1 − percentile`` of a day like the
  training days is flagged) — judged only on days with enough user-days for a share to mean
  something;
* the day's raw score distribution drifted past a hard PSI limit against the champion's
  training reference (the drift monitor's soft limit asks for retraining; this one stops alerts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

#: What on-call can do about a withheld day (every withheld reason ends with it).
REMEDY = (
    "retrain on this source (training_job over its days) so the champion knows it, or "
    "override the guard for a run (anomaly_alerts config override_guard: true)"
)


GUARD_TABLE = "scoring.alert_guard"
#: One verdict of the alert guard per day (``judge_day``) and the model it judged.
GUARD_SCHEMA: dict[str, pl.DataType] = {
    "event_day": pl.Date(),
    "passed": pl.Boolean(),
    "user_days": pl.Int64(),
    "flagged_share": pl.Float64(),
    "expected_share": pl.Float64(),
    "score_psi": pl.Float64(),
    "reason": pl.String(),
    "model_version": pl.String(),
}


@dataclass(frozen=True)
class GuardLimits:
    """``max_flag_multiple``: flagged share allowed, as a multiple of the expected share;
    ``max_score_psi``: score-distribution PSI against the reference beyond which alerts stop;
    ``min_user_days``: fewer user-days than this and the flagged share is not judged."""

    max_flag_multiple: float = 3.0
    max_score_psi: float = 1.0
    min_user_days: int = 100

    def __post_init__(self) -> None:
        if not self.max_flag_multiple >= 1.0:
            raise ValueError(f"max_flag_multiple must be >= 1, got {self.max_flag_multiple}")
        if not self.max_score_psi > 0.0:
            raise ValueError(f"max_score_psi must be > 0, got {self.max_score_psi}")
        if self.min_user_days < 1:
            raise ValueError(f"min_user_days must be >= 1, got {self.min_user_days}")


@dataclass(frozen=True)
class GuardVerdict:
    """One day's verdict: ``passed`` = its alerts may be posted; ``reason`` says why (not),
    ``causes`` lists the limits it broke."""

    day: date | str
    passed: bool
    user_days: int
    flagged_share: float
    expected_share: float
    score_psi: float
    reason: str
    causes: tuple[str, ...] = ()


def judge_day(
    day: date | str,
    flagged: np.ndarray,
    raw_scores: np.ndarray,
    reference_raw_scores: np.ndarray,
    *,
    threshold_percentile: float,
    limits: GuardLimits = GuardLimits(),
) -> GuardVerdict:
    """The verdict on one day's scores (``flagged`` and ``raw_scores`` are its user-days);
    ``day`` may also label pooled days (the gate judges a champion on the held-out days)."""
    from anomaly_pipeline.drift import psi  # scipy: not at the code location's import

    flagged = np.asarray(flagged, dtype=bool)
    n = int(flagged.size)
    expected = 1.0 - threshold_percentile / 100.0
    share = float(flagged.mean()) if n else 0.0
    score_psi = psi(reference_raw_scores, raw_scores) if n else 0.0
    causes = []
    if n >= limits.min_user_days and share > limits.max_flag_multiple * expected:
        causes.append(
            f"{share:.1%} of {n} user-days flagged, {share / expected:.1f}× the "
            f"expected {expected:.1%} (limit {limits.max_flag_multiple:g}×)"
        )
    if score_psi > limits.max_score_psi:
        causes.append(
            f"score distribution PSI {score_psi:.2f} against the champion's training "
            f"reference (limit {limits.max_score_psi:g})"
        )
    if causes:
        reason = (
            f"{day}: alerts withheld — {'; '.join(causes)}: the day does not look like "
            f"the champion's training data; {REMEDY}"
        )
    else:
        reason = (
            f"{day}: {share:.1%} of {n} user-days flagged (expected {expected:.1%}), "
            f"score PSI {score_psi:.2f}: within limits"
        )
    return GuardVerdict(
        day=day,
        passed=not causes,
        user_days=n,
        flagged_share=share,
        expected_share=expected,
        score_psi=score_psi,
        reason=reason,
        causes=tuple(causes),
    )


def verdict_rows(verdicts: list[GuardVerdict], model_version: str) -> pl.DataFrame:
    """``GUARD_TABLE`` rows of day verdicts judged on ``model_version``'s scores."""
    return pl.DataFrame(
        [
            {
                "event_day": v.day,
                "passed": v.passed,
                "user_days": v.user_days,
                "flagged_share": v.flagged_share,
                "expected_share": v.expected_share,
                "score_psi": v.score_psi,
                "reason": v.reason,
                "model_version": model_version,
            }
            for v in verdicts
        ],
        schema=GUARD_SCHEMA,
    )
