"""The champion gate: decide whether a challenger replaces the production model.

Promotion is conservative. A challenger must beat the champion's PR-AUC (the metric that matters
when abnormal user-days are rare) by a margin, and must not trade one anomaly type for another: a
model that is better on average but misses account takeovers it used to catch is a regression for
the team that handles them. When quality cannot be measured the gate keeps the champion, and it
refuses to compare evaluations of different held-out user-days, since PR-AUC moves with
prevalence. Every reason states the numbers that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anomaly_pipeline.detectors.registry import COLD_START_KIND
from anomaly_pipeline.model_refs import GateVerdict

from .results import DetectorEvaluation

#: Slack for float comparisons, so a gain of exactly the margin (0.815 - 0.805) passes.
_EPSILON = 1e-9


@dataclass(frozen=True)
class GateDecision:
    """Outcome of ``decide_promotion``: ``details`` holds the compared numbers (JSON-ready)."""

    promote: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChallengerChoice:
    """Outcome of ``pick_challenger``: ``name`` is None when no detector can be ranked."""

    name: str | None
    reason: str


def _pr_auc(evaluation: DetectorEvaluation) -> float | None:
    return None if evaluation.pr_auc is None else evaluation.pr_auc.value


def _type_recall_changes(
    challenger: DetectorEvaluation, champion: DetectorEvaluation, tolerance: float
) -> tuple[dict[str, dict[str, float | None]], list[str]]:
    """Per-type recall of both models, and a failure message for each drop above tolerance."""
    changes: dict[str, dict[str, float | None]] = {}
    failures = []
    for name, before in champion.type_recall.items():
        after = challenger.type_recall.get(name)
        if after is None:
            changes[name] = {"champion": before.recall, "challenger": None, "drop": None}
            failures.append(
                f"challenger's evaluation has no {name} user-days to compare with the "
                f"champion's recall {before.recall:.2f}"
            )
            continue
        drop = before.recall - after.recall
        changes[name] = {"champion": before.recall, "challenger": after.recall, "drop": drop}
        if drop > tolerance + _EPSILON:
            failures.append(
                f"recall on {name} fell {before.recall:.2f} → {after.recall:.2f} "
                f"(> {tolerance:.2f})"
            )
    return changes, failures


def decide_promotion(
    challenger: DetectorEvaluation,
    champion: DetectorEvaluation | None,
    *,
    min_pr_auc_gain: float = 0.01,
    max_type_recall_drop: float = 0.05,
    require_same_holdout: bool = True,
) -> GateDecision:
    """Promote the challenger, or keep the champion, and say why.

    Rules, in order: no champion → promote (the first model must start somewhere; the reason
    notes when its quality is unknown). Challenger or champion without measurable quality → keep
    the champion. Different held-out user-days (``holdout_fingerprint``) → keep the champion,
    unless ``require_same_holdout`` is False. Otherwise promote only if the PR-AUC gain is at
    least ``min_pr_auc_gain`` and no anomaly type's recall at the operating threshold drops by
    more than ``max_type_recall_drop``; every failed rule is listed in the reason.
    """
    if max_type_recall_drop < 0:
        raise ValueError(f"max_type_recall_drop must be >= 0, got {max_type_recall_drop}")
    challenger_pr = _pr_auc(challenger)
    details: dict[str, Any] = {
        "challenger_pr_auc": challenger_pr,
        "min_pr_auc_gain": min_pr_auc_gain,
        "max_type_recall_drop": max_type_recall_drop,
    }
    if champion is None:
        if challenger_pr is None:
            return GateDecision(
                True,
                "no champion yet: promoting the challenger although its "
                "quality cannot be measured (no labelled held-out user-days of "
                "both classes)",
                details,
            )
        return GateDecision(
            True, f"no champion yet: promoting the challenger (PR-AUC {challenger_pr:.3f})", details
        )

    champion_pr = _pr_auc(champion)
    details["champion_pr_auc"] = champion_pr
    if challenger_pr is None:
        return GateDecision(
            False,
            "challenger's quality cannot be measured (no labelled "
            "held-out user-days of both classes): keeping the champion",
            details,
        )
    if champion_pr is None:
        return GateDecision(
            False,
            "champion's evaluation has no measurable quality, so PR-AUC "
            "cannot be compared: keeping the champion; re-evaluate it on the "
            "challenger's labelled held-out user-days",
            details,
        )
    same_holdout = challenger.holdout_fingerprint == champion.holdout_fingerprint
    details["same_holdout"] = same_holdout
    if require_same_holdout and not same_holdout:
        return GateDecision(
            False,
            "challenger and champion were evaluated on different held-out "
            f"user-days ({challenger.n_user_days} vs {champion.n_user_days} rows, "
            "or different labels): PR-AUC is not comparable; evaluate both on "
            "the same frame",
            details,
        )

    gain = challenger_pr - champion_pr
    details["pr_auc_gain"] = gain
    failures = []
    if gain < min_pr_auc_gain - _EPSILON:
        failures.append(
            f"PR-AUC {challenger_pr:.3f} vs champion {champion_pr:.3f}: "
            f"gain {gain:.3f} < margin {min_pr_auc_gain:.3f}"
        )
    details["type_recall"], type_failures = _type_recall_changes(
        challenger, champion, max_type_recall_drop
    )
    failures += type_failures
    if failures:
        return GateDecision(False, "; ".join(failures), details)
    return GateDecision(
        True,
        f"PR-AUC {challenger_pr:.3f} vs champion {champion_pr:.3f}: gain "
        f"{gain:.3f} ≥ margin {min_pr_auc_gain:.3f}; no anomaly type's recall "
        f"fell by more than {max_type_recall_drop:.2f}",
        details,
    )


def pick_challenger(evaluations: Mapping[str, DetectorEvaluation]) -> ChallengerChoice:
    """The detector with the best PR-AUC (ties broken by ROC-AUC, then by name).

    Detectors without measurable quality cannot be ranked and are skipped; when none can be
    ranked the choice is ``None`` with the reason.
    """
    if not evaluations:
        raise ValueError("pick_challenger needs at least one evaluation")
    ranked = sorted(
        (
            (e.pr_auc.value, e.roc_auc.value, name)
            for name, e in evaluations.items()
            if e.pr_auc is not None and e.roc_auc is not None
        ),
        key=lambda item: (-item[0], -item[1], item[2]),
    )
    unranked = sorted(name for name, e in evaluations.items() if e.pr_auc is None)
    if not ranked:
        return ChallengerChoice(
            None,
            "no detector has measurable quality (no labelled held-out "
            f"user-days of both classes): {', '.join(unranked)}",
        )
    pr_auc, roc_auc, name = ranked[0]
    reason = f"{name} has the best PR-AUC {pr_auc:.3f} (ROC-AUC {roc_auc:.3f})"
    if len(ranked) > 1:
        runner_pr, runner_roc, runner = ranked[1]
        tie = (
            ""
            if runner_pr != pr_auc
            else " (tie broken by ROC-AUC)"
            if runner_roc != roc_auc
            else " (tie broken by name)"
        )
        reason += f"; next {runner} PR-AUC {runner_pr:.3f} (ROC-AUC {runner_roc:.3f}){tie}"
    if unranked:
        reason += f"; skipped without measurable quality: {', '.join(unranked)}"
    return ChallengerChoice(name, reason)


def gate_verdict(
    evaluations: Mapping[str, DetectorEvaluation],
    champion: DetectorEvaluation | None,
    *,
    cold_start_kind: str = COLD_START_KIND,
    champion_unfit: str | None = None,
    min_pr_auc_gain: float = 0.01,
    max_type_recall_drop: float = 0.05,
) -> GateVerdict:
    """Promote, keep or fail, with the reason.

    With labels, the best measurable candidate (``pick_challenger``) faces the champion under
    ``decide_promotion``. Without labelled held-out user-days nothing can be ranked: a champion
    stays, unless ``champion_unfit`` says (the alert guard's reason on the held-out days) that it
    does not know this data — a champion from another source would keep every alert withheld,
    and retraining on the source is the guard's own advice; with no champion yet, or an unfit
    one, the label-free default ``cold_start_kind`` is promoted so that scoring can start, and
    the reason says so. It is an error only when that default was not among the candidates.
    """
    choice = pick_challenger(evaluations)
    if choice.name is not None:
        decision = decide_promotion(
            evaluations[choice.name],
            champion,
            min_pr_auc_gain=min_pr_auc_gain,
            max_type_recall_drop=max_type_recall_drop,
        )
        return GateVerdict(
            "promote" if decision.promote else "keep",
            choice.name if decision.promote else None,
            decision.reason,
            choice.reason,
            details=decision.details,
        )
    if champion is not None and champion_unfit is None:
        return GateVerdict("keep", None, f"keeping the champion: {choice.reason}", choice.reason)
    situation = (
        "no champion yet"
        if champion is None
        else f"the champion does not know this data ({champion_unfit})"
    )
    if cold_start_kind not in evaluations:
        return GateVerdict(
            "error",
            None,
            f"{situation} and {choice.reason}; the label-free "
            f"default {cold_start_kind!r} was not trained, so there is nothing to "
            f"promote: add {cold_start_kind!r} to baseline_models' kinds "
            f"(trained: {', '.join(sorted(evaluations))})",
            choice.reason,
        )
    return GateVerdict(
        "promote",
        cold_start_kind,
        f"cold start: {situation} and {choice.reason}"
        f"; promoting the label-free default {cold_start_kind!r}, the best "
        "detector without labels on average over the simulator's difficulty "
        "levels and anomaly types (README, 'Cold start'); retrain once labelled "
        "days exist and the gate compares by PR-AUC",
        choice.reason,
        cold_start_default=cold_start_kind,
        details={"cold_start_default": cold_start_kind},
    )
