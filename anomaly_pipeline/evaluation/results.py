"""The evaluation result: plain frozen dataclasses that round-trip through JSON.

A ``DetectorEvaluation`` is written to ``evaluation.json`` next to the Markdown report and logged
to MLflow, so the champion gate can later compare a challenger against the champion's stored
evaluation without re-scoring. Undefined metrics (precision with nothing flagged, AUC without both
classes) are ``None`` rather than NaN, because NaN is not valid JSON and reads as a number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

ThresholdKind = Literal["operating", "percentile", "fpr_target"]


def optional_float(value: float | None) -> float | None:
    """A plain ``float``, or ``None`` for missing/NaN values (so the result stays JSON-clean)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95 % percentile interval (``None`` when not computed)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class ConfusionCounts:
    """Confusion matrix at the operating threshold (labelled user-days only)."""

    tn: int
    fp: int
    fn: int
    tp: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class ThresholdRow:
    """One candidate threshold and what it would do on the held-out user-days.

    ``target`` is the score percentile (e.g. 99.5) for ``percentile`` rows, the false-positive-rate
    bound (e.g. 0.01) for ``fpr_target`` rows, and ``None`` for the ``operating`` row. A user-day
    is flagged when its score is at or above ``threshold`` (as ``Detector.predict`` does).
    ``flagged`` and ``flagged_per_day`` count every held-out user-day; ``tpr``, ``fpr`` and
    ``precision`` use the labelled ones and are ``None`` without labels.
    """

    name: str
    kind: ThresholdKind
    target: float | None
    threshold: float
    flagged: int
    flagged_per_day: float
    tpr: float | None = None
    fpr: float | None = None
    precision: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class TypeRecall:
    """Recall at the operating threshold on the labelled user-days of one anomaly type."""

    n: int
    detected: int
    recall: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True)
class Curve:
    """A curve for plotting (ROC: x = FPR, y = TPR; PR: x = recall, y = precision)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(x=tuple(data["x"]), y=tuple(data["y"]))


@dataclass(frozen=True)
class ScoreHistogram:
    """Score counts on shared bin edges, split by label (normal / abnormal / unknown)."""

    edges: tuple[float, ...]
    normal: tuple[int, ...]
    abnormal: tuple[int, ...]
    unlabelled: tuple[int, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{key: tuple(values) for key, values in data.items()})


@dataclass(frozen=True)
class Stability:
    """Spearman rank correlation with a previous model's scores on the same user-days."""

    spearman: float | None
    p_value: float | None
    n_matched: int
    n_rows: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


def _optional(factory: Any, data: Mapping[str, Any] | None) -> Any:
    return None if data is None else factory.from_dict(data)


@dataclass(frozen=True)
class DetectorEvaluation:
    """Everything known about one detector on one held-out set.

    ``quality_measurable`` is False when the labelled user-days do not contain both classes; then
    every quality field (AUCs, precision/recall/F1, confusion, p@k, per-type recall, curves) is
    ``None``/empty and only distributions, alert volumes and stability are reported.
    ``holdout_fingerprint`` identifies the held-out keys and labels, so two evaluations are only
    compared when they describe the same user-days.
    """

    threshold: float
    n_user_days: int
    n_days: int
    n_labelled: int
    n_positive: int
    holdout_fingerprint: str
    quality_measurable: bool
    score_summary: dict[str, float]
    histogram: ScoreHistogram
    threshold_table: tuple[ThresholdRow, ...]
    roc_auc: Estimate | None = None
    pr_auc: Estimate | None = None
    n_bootstrap_valid: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    confusion: ConfusionCounts | None = None
    precision_at_k: dict[int, float | None] = field(default_factory=dict)
    type_recall: dict[str, TypeRecall] = field(default_factory=dict)
    roc_curve: Curve | None = None
    pr_curve: Curve | None = None
    stability: Stability | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``precision_at_k`` keys become strings, tuples become lists)."""
        data = asdict(self)
        data["precision_at_k"] = {str(k): v for k, v in self.precision_at_k.items()}
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of ``to_dict``."""
        return cls(
            threshold=data["threshold"],
            n_user_days=data["n_user_days"],
            n_days=data["n_days"],
            n_labelled=data["n_labelled"],
            n_positive=data["n_positive"],
            holdout_fingerprint=data["holdout_fingerprint"],
            quality_measurable=data["quality_measurable"],
            score_summary=dict(data["score_summary"]),
            histogram=ScoreHistogram.from_dict(data["histogram"]),
            threshold_table=tuple(ThresholdRow.from_dict(row) for row in data["threshold_table"]),
            roc_auc=_optional(Estimate, data.get("roc_auc")),
            pr_auc=_optional(Estimate, data.get("pr_auc")),
            n_bootstrap_valid=data.get("n_bootstrap_valid", 0),
            precision=data.get("precision"),
            recall=data.get("recall"),
            f1=data.get("f1"),
            confusion=_optional(ConfusionCounts, data.get("confusion")),
            precision_at_k={int(k): v for k, v in data.get("precision_at_k", {}).items()},
            type_recall={
                name: TypeRecall.from_dict(value)
                for name, value in data.get("type_recall", {}).items()
            },
            roc_curve=_optional(Curve, data.get("roc_curve")),
            pr_curve=_optional(Curve, data.get("pr_curve")),
            stability=_optional(Stability, data.get("stability")),
            notes=tuple(data.get("notes", ())),
        )


def save_evaluations(path: str | Path, evaluations: Mapping[str, DetectorEvaluation]) -> Path:
    """Write ``{detector name: evaluation}`` as JSON (the ``evaluation.json`` artifact)."""
    path = Path(path)
    payload = {name: evaluation.to_dict() for name, evaluation in evaluations.items()}
    path.write_text(json.dumps(payload, indent=2))
    return path


def load_evaluations(path: str | Path) -> dict[str, DetectorEvaluation]:
    """Read a file written by ``save_evaluations`` (e.g. the champion's downloaded artifact)."""
    payload = json.loads(Path(path).read_text())
    return {name: DetectorEvaluation.from_dict(data) for name, data in payload.items()}
