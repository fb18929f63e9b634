"""The threshold table: candidate thresholds and what each would do on the held-out user-days.

Rows come in three kinds. ``operating`` is the detector's fitted threshold. ``percentile`` rows
put the threshold at a percentile of the held-out scores (the alert budget view: "flag the top
1 %"). ``fpr_target`` rows pick, from sklearn's ROC curve, the threshold with the highest TPR whose
false-positive rate does not exceed the target (the analyst-workload view); they need labels.
Every row reports the alert volume per day, so on-call can see the cost of a threshold before
moving it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Final

import numpy as np
from sklearn.metrics import roc_curve

from .metrics import confusion_at, false_positive_rate, flags_at, precision_recall_f1_at
from .results import ThresholdKind, ThresholdRow

SCORE_PERCENTILES: Final[tuple[float, ...]] = (90.0, 95.0, 99.0, 99.5)
FPR_TARGETS: Final[tuple[float, ...]] = (0.001, 0.01, 0.05)


def thresholds_for_fpr_targets(
    y: np.ndarray, scores: np.ndarray, targets: Sequence[float]
) -> list[float]:
    """For each FPR target, the threshold with the best TPR at FPR ≤ target (``>=`` rule).

    sklearn's ``roc_curve`` flags ``score >= t`` at each distinct score ``t``, the rule of
    ``flags_at``, so the row's FPR is exactly the curve's FPR and never above the target. The
    curve's first point (flag nothing) has threshold +inf; it becomes the value just above the
    highest score, which flags nothing too and stays a finite number.
    """
    fpr, _, curve_thresholds = roc_curve(y, scores, drop_intermediate=False)
    result = []
    for target in targets:
        best = int(np.flatnonzero(fpr <= target)[-1])  # fpr[0] == 0: flag nothing
        result.append(
            float(curve_thresholds[best])
            if best > 0
            else float(np.nextafter(np.max(scores), np.inf))
        )
    return result


def threshold_row(
    name: str,
    kind: ThresholdKind,
    target: float | None,
    threshold: float,
    *,
    scores: np.ndarray,
    n_days: int,
    y: np.ndarray | None = None,
    labelled_scores: np.ndarray | None = None,
) -> ThresholdRow:
    """Volume over all ``scores``; TPR/FPR/precision over ``labelled_scores`` when given."""
    flagged = int(flags_at(scores, threshold).sum())
    tpr = fpr = precision = None
    if y is not None and labelled_scores is not None:
        precision, tpr, _ = precision_recall_f1_at(y, labelled_scores, threshold)
        fpr = false_positive_rate(confusion_at(y, labelled_scores, threshold))
    return ThresholdRow(
        name=name,
        kind=kind,
        target=target,
        threshold=float(threshold),
        flagged=flagged,
        flagged_per_day=flagged / n_days,
        tpr=tpr,
        fpr=fpr,
        precision=precision,
    )


def threshold_table(
    scores: np.ndarray,
    *,
    operating_threshold: float,
    n_days: int,
    y: np.ndarray | None = None,
    labelled_scores: np.ndarray | None = None,
) -> tuple[ThresholdRow, ...]:
    """Operating row, score-percentile rows, then FPR-target rows (only when labels are given).

    Percentile rows are monotone by construction (higher percentile → higher threshold → fewer
    alerts); FPR-target rows are monotone the other way (looser target → lower threshold).
    """
    row = partial(threshold_row, scores=scores, n_days=n_days, y=y, labelled_scores=labelled_scores)
    rows = [row("operating", "operating", None, operating_threshold)]
    for q, value in zip(SCORE_PERCENTILES, np.percentile(scores, SCORE_PERCENTILES), strict=True):
        rows.append(row(f"p{q:g}", "percentile", q, float(value)))
    if y is not None and labelled_scores is not None:
        for target, value in zip(
            FPR_TARGETS, thresholds_for_fpr_targets(y, labelled_scores, FPR_TARGETS), strict=True
        ):
            rows.append(row(f"fpr<={target * 100:g}%", "fpr_target", target, value))
    return tuple(rows)
