"""The champion gate: decide_promotion, pick_challenger and gate_verdict
(anomaly_pipeline.evaluation.gate)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from anomaly_pipeline.detectors.registry import COLD_START_KIND
from anomaly_pipeline.evaluation import (
    DetectorEvaluation,
    decide_promotion,
    evaluate_detector,
    gate_verdict,
    pick_challenger,
)
from anomaly_pipeline.evaluation.results import Estimate

N_USER_DAYS = 3000
THRESHOLD = 2.0


def _holdout(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Shared held-out set: 60 account takeovers and 60 click bots among 3000 user-days."""
    rng = np.random.default_rng(seed)
    types = np.full(N_USER_DAYS, None, dtype=object)
    chosen = rng.choice(N_USER_DAYS, 120, replace=False)
    types[chosen[:60]] = "account_takeover"
    types[chosen[60:]] = "click_bot"
    return types, rng.normal(size=N_USER_DAYS)


TYPES, NOISE = _holdout()


def evaluate(shift: dict[str, float], *, rows: int = N_USER_DAYS) -> DetectorEvaluation:
    """A detector whose abnormal user-days of each type score ``shift[type]`` above normal."""
    scores = NOISE.copy()
    for name, offset in shift.items():
        scores[name == TYPES] += offset
    frame = pl.DataFrame(
        {
            "user_key": [f"u{i}" for i in range(N_USER_DAYS)],
            "event_day": [dt.date(2026, 3, 1 + i % 3) for i in range(N_USER_DAYS)],
            "score": scores,
            "label": np.array([t is not None for t in TYPES], dtype=np.int8),
            "anomaly_type": pl.Series(list(TYPES), dtype=pl.String),
        }
    ).head(rows)
    return evaluate_detector(frame, threshold=THRESHOLD, n_bootstrap=0)


@pytest.fixture(scope="module")
def champion() -> DetectorEvaluation:
    return evaluate({"account_takeover": 2.5, "click_bot": 2.5})


@pytest.fixture(scope="module")
def unlabelled() -> DetectorEvaluation:
    frame = pl.DataFrame(
        {
            "user_key": [f"u{i}" for i in range(100)],
            "event_day": [dt.date(2026, 3, 1)] * 100,
            "score": NOISE[:100],
            "label": None,
            "anomaly_type": None,
        }
    )
    return evaluate_detector(frame, threshold=THRESHOLD)


def with_pr_auc(
    evaluation: DetectorEvaluation, pr_auc: float, roc_auc: float | None = None
) -> DetectorEvaluation:
    roc = evaluation.roc_auc if roc_auc is None else Estimate(roc_auc)
    return replace(evaluation, pr_auc=Estimate(pr_auc), roc_auc=roc)


# -- decide_promotion ----------------------------------------------------------------------------
def test_promotes_when_there_is_no_champion(
    champion: DetectorEvaluation, unlabelled: DetectorEvaluation
) -> None:
    decision = decide_promotion(champion, None)
    assert decision.promote
    assert (
        decision.reason == f"no champion yet: promoting the challenger "
        f"(PR-AUC {champion.pr_auc.value:.3f})"
    )
    unmeasured = decide_promotion(unlabelled, None)
    assert unmeasured.promote and "quality cannot be measured" in unmeasured.reason


def test_blocks_a_worse_challenger(champion: DetectorEvaluation) -> None:
    worse = evaluate({"account_takeover": 1.5, "click_bot": 1.5})
    decision = decide_promotion(worse, champion)
    assert not decision.promote
    gain = worse.pr_auc.value - champion.pr_auc.value
    assert (
        f"PR-AUC {worse.pr_auc.value:.3f} vs champion {champion.pr_auc.value:.3f}: "
        f"gain {gain:.3f} < margin 0.010"
    ) in decision.reason
    assert "recall on account_takeover fell" in decision.reason  # every failed rule is listed
    assert decision.details["pr_auc_gain"] == pytest.approx(gain)


def test_gain_below_margin_names_the_numbers(champion: DetectorEvaluation) -> None:
    decision = decide_promotion(with_pr_auc(champion, 0.812), with_pr_auc(champion, 0.805))
    assert not decision.promote
    assert decision.reason == "PR-AUC 0.812 vs champion 0.805: gain 0.007 < margin 0.010"
    exactly_margin = decide_promotion(with_pr_auc(champion, 0.815), with_pr_auc(champion, 0.805))
    assert exactly_margin.promote


def test_blocks_per_type_regression_even_when_pr_auc_improves(champion: DetectorEvaluation) -> None:
    challenger = evaluate({"account_takeover": 2.0, "click_bot": 6.0})
    assert challenger.pr_auc.value > champion.pr_auc.value + 0.05
    decision = decide_promotion(challenger, champion)
    assert not decision.promote
    before = champion.type_recall["account_takeover"].recall
    after = challenger.type_recall["account_takeover"].recall
    assert decision.reason == (
        f"recall on account_takeover fell {before:.2f} → {after:.2f} (> 0.05)"
    )
    assert decision.details["type_recall"]["account_takeover"]["drop"] == pytest.approx(
        before - after
    )
    assert decide_promotion(challenger, champion, max_type_recall_drop=0.5).promote


def test_promotes_a_better_challenger(champion: DetectorEvaluation) -> None:
    better = evaluate({"account_takeover": 3.5, "click_bot": 3.5})
    decision = decide_promotion(better, champion)
    assert decision.promote
    assert decision.reason.startswith(
        f"PR-AUC {better.pr_auc.value:.3f} vs champion {champion.pr_auc.value:.3f}: gain "
    )
    assert decision.details["same_holdout"] is True
    json.dumps(decision.details)  # details travel as Dagster/MLflow metadata


def test_unmeasurable_challenger_never_replaces_a_champion(
    champion: DetectorEvaluation, unlabelled: DetectorEvaluation
) -> None:
    decision = decide_promotion(unlabelled, champion)
    assert not decision.promote
    assert "challenger's quality cannot be measured" in decision.reason
    against_unmeasured = decide_promotion(champion, unlabelled)
    assert not against_unmeasured.promote
    assert "champion's evaluation has no measurable quality" in against_unmeasured.reason


def test_different_holdouts_are_not_compared(champion: DetectorEvaluation) -> None:
    other_holdout = evaluate({"account_takeover": 3.5, "click_bot": 3.5}, rows=2000)
    decision = decide_promotion(other_holdout, champion)
    assert not decision.promote
    assert "different held-out user-days (2000 vs 3000 rows" in decision.reason
    assert decide_promotion(other_holdout, champion, require_same_holdout=False).promote


# -- pick_challenger -----------------------------------------------------------------------------
def test_pick_challenger_takes_best_pr_auc(
    champion: DetectorEvaluation, unlabelled: DetectorEvaluation
) -> None:
    choice = pick_challenger(
        {
            "gaussian": with_pr_auc(champion, 0.61),
            "autoencoder": with_pr_auc(champion, 0.74),
            "sequence": unlabelled,
        }
    )
    assert choice.name == "autoencoder"
    assert choice.reason.startswith("autoencoder has the best PR-AUC 0.740")
    assert "skipped without measurable quality: sequence" in choice.reason


def test_pick_challenger_breaks_ties_by_roc_auc(champion: DetectorEvaluation) -> None:
    choice = pick_challenger(
        {
            "lof": with_pr_auc(champion, 0.7, roc_auc=0.90),
            "iforest": with_pr_auc(champion, 0.7, roc_auc=0.93),
        }
    )
    assert choice.name == "iforest"
    assert "tie broken by ROC-AUC" in choice.reason


def test_pick_challenger_without_labels_returns_none(unlabelled: DetectorEvaluation) -> None:
    choice = pick_challenger({"gaussian": unlabelled, "lof": unlabelled})
    assert choice.name is None
    assert "no detector has measurable quality" in choice.reason
    with pytest.raises(ValueError, match="at least one evaluation"):
        pick_challenger({})


# -- gate_verdict --------------------------------------------------------------------------------
def test_cold_start_promotes_the_label_free_default_and_says_so(
    unlabelled: DetectorEvaluation,
) -> None:
    verdict = gate_verdict({"gaussian": unlabelled, COLD_START_KIND: unlabelled}, None)
    assert (verdict.action, verdict.promoted) == ("promote", COLD_START_KIND)
    assert verdict.cold_start_default == COLD_START_KIND
    assert verdict.details["cold_start_default"] == COLD_START_KIND
    assert "cold start" in verdict.reason and "label-free default" in verdict.reason
    assert "no labelled held-out user-days" in verdict.reason


def test_cold_start_without_the_default_is_an_error_that_names_the_fix(
    unlabelled: DetectorEvaluation,
) -> None:
    verdict = gate_verdict({"gaussian": unlabelled}, None)
    assert (verdict.action, verdict.promoted) == ("error", None)
    assert f"add {COLD_START_KIND!r} to baseline_models' kinds" in verdict.reason


def test_without_labels_a_champion_is_kept_not_failed(
    champion: DetectorEvaluation, unlabelled: DetectorEvaluation
) -> None:
    verdict = gate_verdict({COLD_START_KIND: unlabelled}, champion)
    assert (verdict.action, verdict.promoted, verdict.cold_start_default) == ("keep", None, None)
    assert "keeping the champion" in verdict.reason


def test_with_labels_the_gate_compares_pr_auc_as_before(champion: DetectorEvaluation) -> None:
    better = evaluate({"account_takeover": 4.0, "click_bot": 4.0})
    worse = evaluate({"account_takeover": 1.0, "click_bot": 1.0})
    promoted = gate_verdict({"gaussian": better, COLD_START_KIND: worse}, champion)
    assert (promoted.action, promoted.promoted, promoted.cold_start_default) == (
        "promote",
        "gaussian",
        None,
    )
    assert promoted.reason == decide_promotion(better, champion).reason
    kept = gate_verdict({COLD_START_KIND: worse}, champion)
    assert (kept.action, kept.promoted) == ("keep", None)
    assert kept.reason == decide_promotion(worse, champion).reason
    first = gate_verdict({"lof": worse, "gaussian": better}, None)
    assert (first.action, first.promoted) == ("promote", "gaussian")


def test_an_unfit_champion_without_labels_gives_way_to_the_label_free_default(
    champion: DetectorEvaluation, unlabelled: DetectorEvaluation
) -> None:
    unfit = "60.0% of 500 user-days flagged, 20.0× the expected 3.0% (limit 3×)"
    verdict = gate_verdict({COLD_START_KIND: unlabelled}, champion, champion_unfit=unfit)
    assert (verdict.action, verdict.promoted) == ("promote", COLD_START_KIND)
    assert verdict.cold_start_default == COLD_START_KIND
    assert f"the champion does not know this data ({unfit})" in verdict.reason
    # with labels the gate compares as before, fit or not
    better = evaluate({"account_takeover": 4.0, "click_bot": 4.0})
    labelled = gate_verdict({"gaussian": better}, champion, champion_unfit=unfit)
    assert labelled.reason == decide_promotion(better, champion).reason
