"""Side-by-side table of several detectors evaluated on the same held-out user-days."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from anomaly_pipeline.schema import ANOMALY_TYPES

from .results import DetectorEvaluation


def ordered_types(evaluations: Mapping[str, DetectorEvaluation]) -> list[str]:
    """Anomaly types seen in any evaluation: known ones in ``ANOMALY_TYPES`` order, then others."""
    seen = {name for evaluation in evaluations.values() for name in evaluation.type_recall}
    return [t for t in ANOMALY_TYPES if t in seen] + sorted(seen - set(ANOMALY_TYPES))


def ordered_ks(evaluations: Mapping[str, DetectorEvaluation]) -> list[int]:
    """Every precision@k cut-off used by any evaluation, ascending."""
    return sorted({k for evaluation in evaluations.values() for k in evaluation.precision_at_k})


def compare_detectors(evaluations: Mapping[str, DetectorEvaluation]) -> pl.DataFrame:
    """One row per detector, in the mapping's order.

    Columns: ``detector``, ``quality_measurable``, ``threshold``, ``n_user_days``, ``n_positive``,
    ``roc_auc`` / ``roc_auc_ci_low`` / ``roc_auc_ci_high``, the same for ``pr_auc``,
    ``precision``, ``recall``, ``f1`` and ``flagged_per_day`` at the operating threshold, one
    ``precision_at_<k>`` per cut-off and one ``recall_<anomaly type>`` per type. Metrics that are
    undefined for a detector (no labels, type absent) are null.
    """
    if not evaluations:
        raise ValueError("compare_detectors needs at least one evaluation")
    ks, types = ordered_ks(evaluations), ordered_types(evaluations)
    schema: dict[str, pl.DataType] = {
        "detector": pl.String(),
        "quality_measurable": pl.Boolean(),
        "threshold": pl.Float64(),
        "n_user_days": pl.Int64(),
        "n_positive": pl.Int64(),
    }
    for name in (
        "roc_auc",
        "roc_auc_ci_low",
        "roc_auc_ci_high",
        "pr_auc",
        "pr_auc_ci_low",
        "pr_auc_ci_high",
        "precision",
        "recall",
        "f1",
        "flagged_per_day",
    ):
        schema[name] = pl.Float64()
    schema |= {f"precision_at_{k}": pl.Float64() for k in ks}
    schema |= {f"recall_{t}": pl.Float64() for t in types}

    rows = []
    for detector, evaluation in evaluations.items():
        operating = next(row for row in evaluation.threshold_table if row.kind == "operating")
        row: dict[str, object] = {
            "detector": detector,
            "quality_measurable": evaluation.quality_measurable,
            "threshold": evaluation.threshold,
            "n_user_days": evaluation.n_user_days,
            "n_positive": evaluation.n_positive,
            "precision": evaluation.precision,
            "recall": evaluation.recall,
            "f1": evaluation.f1,
            "flagged_per_day": operating.flagged_per_day,
        }
        for metric in ("roc_auc", "pr_auc"):
            estimate = getattr(evaluation, metric)
            row[metric] = None if estimate is None else estimate.value
            row[f"{metric}_ci_low"] = None if estimate is None else estimate.ci_low
            row[f"{metric}_ci_high"] = None if estimate is None else estimate.ci_high
        for k in ks:
            row[f"precision_at_{k}"] = evaluation.precision_at_k.get(k)
        for t in types:
            recall = evaluation.type_recall.get(t)
            row[f"recall_{t}"] = None if recall is None else recall.recall
        rows.append(row)
    return pl.DataFrame(rows, schema=schema)
