"""The alert guard's verdict on one day (anomaly_pipeline.alert_guard)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from anomaly_pipeline.alert_guard import REMEDY, GuardLimits, judge_day

DAY = date(2026, 11, 5)
RNG = np.random.default_rng(3)
REFERENCE = RNG.gamma(2.0, 1.0, 5000)


def _day(n: int, flagged_share: float, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    flagged = np.zeros(n, dtype=bool)
    flagged[: round(n * flagged_share)] = True
    return flagged, RNG.gamma(2.0, 1.0, n) + shift


def test_a_day_like_the_training_days_passes() -> None:
    verdict = judge_day(DAY, *_day(2000, 0.04), REFERENCE, threshold_percentile=97.0)
    assert verdict.passed
    assert verdict.expected_share == pytest.approx(0.03)
    assert verdict.flagged_share == pytest.approx(0.04)
    assert verdict.score_psi < 0.1
    assert "within limits" in verdict.reason


def test_a_flood_of_flags_withholds_the_day_and_says_what_to_do() -> None:
    verdict = judge_day(DAY, *_day(2000, 0.5), REFERENCE, threshold_percentile=97.0)
    assert not verdict.passed
    assert "50.0% of 2000 user-days flagged, 16.7× the expected 3.0% (limit 3×)" in verdict.reason
    assert verdict.reason.startswith(f"{DAY}: alerts withheld")
    assert verdict.reason.endswith(REMEDY)


def test_a_drifted_score_distribution_withholds_the_day() -> None:
    verdict = judge_day(DAY, *_day(2000, 0.0, shift=20.0), REFERENCE, threshold_percentile=97.0)
    assert not verdict.passed
    assert verdict.score_psi > 1.0
    assert (
        "score distribution PSI" in verdict.reason
        and "flagged" not in verdict.reason.split("—")[1].split(";")[0]
    )


def test_small_days_are_not_judged_on_their_share() -> None:
    few = _day(20, 0.5)
    assert judge_day(DAY, *few, REFERENCE, threshold_percentile=97.0).passed
    strict = GuardLimits(min_user_days=10)
    assert not judge_day(DAY, *few, REFERENCE, threshold_percentile=97.0, limits=strict).passed


def test_an_empty_day_passes_and_limits_are_validated() -> None:
    verdict = judge_day(
        DAY, np.array([], dtype=bool), np.array([]), REFERENCE, threshold_percentile=97.0
    )
    assert verdict.passed and verdict.user_days == 0
    for bad in ({"max_flag_multiple": 0.5}, {"max_score_psi": 0.0}, {"min_user_days": 0}):
        with pytest.raises(ValueError):
            GuardLimits(**bad)
