"""``evaluate_detector``: one detector's scored held-out user-days → ``DetectorEvaluation``.

Quality metrics use the labelled user-days only; alert volumes, score distributions and stability
use all of them. When the labelled rows do not hold both classes (typically: no labels at all) the
evaluation says so (``quality_measurable=False``) instead of reporting numbers that would look like
quality but are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from .inputs import (
    KEY_COLUMNS,
    holdout_fingerprint,
    validate_previous_scores,
    validate_scored_frame,
)
from .metrics import (
    confusion_at,
    flags_at,
    pr_points,
    precision_at_k,
    precision_recall_f1_at,
    ranking_metrics,
    recall_by_type,
    roc_points,
)
from .results import DetectorEvaluation, ScoreHistogram, Stability, optional_float
from .thresholds import threshold_table

HISTOGRAM_BINS: Final[int] = 60
SUMMARY_QUANTILES: Final[dict[str, float]] = {
    "min": 0.0,
    "p1": 0.01,
    "p5": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p90": 0.9,
    "p95": 0.95,
    "p99": 0.99,
    "p99.5": 0.995,
    "max": 1.0,
}


def score_summary(scores: np.ndarray) -> dict[str, float]:
    """Quantiles, mean and standard deviation of the scores."""
    quantiles = np.quantile(scores, list(SUMMARY_QUANTILES.values()))
    summary = {name: float(value) for name, value in zip(SUMMARY_QUANTILES, quantiles, strict=True)}
    summary["mean"] = float(scores.mean())
    summary["std"] = float(scores.std())
    return summary


def score_histogram(scored: pl.DataFrame) -> ScoreHistogram:
    """Counts of normal, abnormal and unlabelled scores on one set of linear bins."""
    scores = scored["score"].to_numpy()
    edges = np.histogram_bin_edges(scores, bins=HISTOGRAM_BINS)

    def counts(condition: pl.Expr) -> tuple[int, ...]:
        values = scored.filter(condition)["score"].to_numpy()
        return tuple(int(c) for c in np.histogram(values, bins=edges)[0])

    return ScoreHistogram(
        edges=tuple(float(e) for e in edges),
        normal=counts(pl.col("label") == 0),
        abnormal=counts(pl.col("label") == 1),
        unlabelled=counts(pl.col("label").is_null()),
    )


def score_stability(scored: pl.DataFrame, previous: pl.DataFrame) -> Stability:
    """Spearman correlation with ``previous`` scores on the user-days both frames hold."""
    matched = scored.join(
        validate_previous_scores(previous), on=list(KEY_COLUMNS), how="inner", suffix="_previous"
    )
    rho = p_value = None
    if matched.height >= 3:
        result = spearmanr(matched["score"].to_numpy(), matched["score_previous"].to_numpy())
        rho, p_value = optional_float(result.statistic), optional_float(result.pvalue)
    return Stability(spearman=rho, p_value=p_value, n_matched=matched.height, n_rows=scored.height)


def _check_arguments(threshold: float, ks: Sequence[int], n_bootstrap: int) -> None:
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")


def evaluate_detector(
    frame: pl.DataFrame,
    *,
    threshold: float,
    ks: Sequence[int] = (10, 50, 100),
    n_bootstrap: int = 200,
    seed: int = 0,
    previous: pl.DataFrame | None = None,
) -> DetectorEvaluation:
    """Evaluate one detector's scores on held-out user-days.

    ``frame`` has ``user_key, event_day, score, label, anomaly_type`` (see
    ``validate_scored_frame``); ``threshold`` is the detector's operating threshold in score units
    (flag = score >= threshold). ``ks`` are the cut-offs for precision@k over the labelled user-days
    ranked by score. ``n_bootstrap`` resamples (seeded by ``seed``) give 95 % intervals for ROC-AUC
    and PR-AUC; 0 skips them. ``previous``, a frame of ``user_key, event_day, score`` from the
    model being replaced, adds a rank-stability figure.
    """
    _check_arguments(threshold, ks, n_bootstrap)
    scored = validate_scored_frame(frame)
    scores = scored["score"].to_numpy()
    n_days = scored["event_day"].n_unique()
    labelled = scored.filter(pl.col("label").is_not_null())
    y = labelled["label"].to_numpy().astype(np.int8)
    n_positive = int(y.sum())
    measurable = 0 < n_positive < len(y)

    notes: list[str] = []
    common: dict[str, Any] = dict(
        threshold=float(threshold),
        n_user_days=scored.height,
        n_days=n_days,
        n_labelled=labelled.height,
        n_positive=n_positive,
        holdout_fingerprint=holdout_fingerprint(scored),
        quality_measurable=measurable,
        score_summary=score_summary(scores),
        histogram=score_histogram(scored),
        stability=None if previous is None else score_stability(scored, previous),
    )
    if not measurable:
        notes.append(
            "Quality cannot be measured: no user-day is labelled."
            if labelled.height == 0
            else f"Quality cannot be measured: the {labelled.height} labelled user-days are all "
            f"{'abnormal' if n_positive else 'normal'}."
        )
        table = threshold_table(scores, operating_threshold=threshold, n_days=n_days)
        return DetectorEvaluation(threshold_table=table, notes=tuple(notes), **common)

    labelled_scores = labelled["score"].to_numpy()
    roc_auc, pr_auc, n_valid = ranking_metrics(
        y, labelled_scores, n_bootstrap=n_bootstrap, seed=seed
    )
    if n_valid < n_bootstrap:
        notes.append(
            f"{n_bootstrap - n_valid} of {n_bootstrap} bootstrap resamples held a single "
            "class and were skipped."
        )
    if labelled.height < scored.height:
        notes.append(
            f"{scored.height - labelled.height} of {scored.height} user-days are "
            "unlabelled: quality metrics use the labelled ones, alert volumes use all."
        )
    if any(k > labelled.height for k in ks):
        notes.append(
            f"precision@k is undefined for k above the {labelled.height} labelled user-days."
        )
    untyped = labelled.filter((pl.col("label") == 1) & pl.col("anomaly_type").is_null()).height
    if untyped:
        notes.append(
            f"{untyped} abnormal user-days carry no anomaly type: they count in overall "
            "recall only."
        )

    precision, recall, f1 = precision_recall_f1_at(y, labelled_scores, threshold)
    table = threshold_table(
        scores, operating_threshold=threshold, n_days=n_days, y=y, labelled_scores=labelled_scores
    )
    return DetectorEvaluation(
        threshold_table=table,
        roc_auc=roc_auc,
        pr_auc=pr_auc,
        n_bootstrap_valid=n_valid,
        precision=precision,
        recall=recall,
        f1=f1,
        confusion=confusion_at(y, labelled_scores, threshold),
        precision_at_k=precision_at_k(y, labelled_scores, ks),
        type_recall=recall_by_type(
            labelled["anomaly_type"].to_numpy(), flags_at(labelled_scores, threshold)
        ),
        roc_curve=roc_points(y, labelled_scores),
        pr_curve=pr_points(y, labelled_scores),
        notes=tuple(notes),
        **common,
    )
