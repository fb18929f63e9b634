"""The evaluation report: Markdown for Dagster metadata, and a directory for MLflow artifacts.

``render_report`` returns self-contained Markdown (images inlined as base64) so that one metadata
value shows everything in the Dagster UI. ``write_report`` writes the same Markdown, each PNG as a
file and ``evaluation.json`` into one directory, which the training layer logs to MLflow with
``log_artifacts``; the demo and tests read the JSON back with ``load_evaluations``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .compare import ordered_ks, ordered_types
from .plots import png_to_markdown, pr_curves_png, roc_curves_png, score_histogram_png
from .results import DetectorEvaluation, Estimate, save_evaluations

REPORT_FILE = "report.md"
EVALUATION_FILE = "evaluation.json"
ROC_FILE = "roc_curves.png"
PR_FILE = "pr_curves.png"
DASH = "–"


@dataclass(frozen=True)
class ReportPaths:
    """Files written by ``write_report``."""

    directory: Path
    report: Path
    evaluation_json: Path
    images: tuple[Path, ...]

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.report, self.evaluation_json, *self.images)


# -- formatting ------------------------------------------------------------------------------
def _number(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _threshold(value: float) -> str:
    return f"{value:.5g}"


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{value:.2%}"


def _with_ci(estimate: Estimate | None) -> str:
    if estimate is None:
        return DASH
    if estimate.ci_low is None or estimate.ci_high is None:
        return _number(estimate.value)
    return f"{estimate.value:.3f} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pipes inside cells are escaped)."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def histogram_file(detector: str) -> str:
    """File name of a detector's score histogram (detector names may hold any character)."""
    return f"score_histogram_{re.sub(r'[^A-Za-z0-9_.-]+', '_', detector)}.png"


# -- images ----------------------------------------------------------------------------------
def report_images(evaluations: Mapping[str, DetectorEvaluation]) -> dict[str, bytes]:
    """Every plot of the report, by file name (curves only when some detector has labels)."""
    images: dict[str, bytes] = {}
    for file_name, png in (
        (ROC_FILE, roc_curves_png(evaluations)),
        (PR_FILE, pr_curves_png(evaluations)),
    ):
        if png is not None:
            images[file_name] = png
    for detector, evaluation in evaluations.items():
        file_name = histogram_file(detector)
        if file_name in images:
            raise ValueError(f"detector names collide as file name {file_name!r}: rename one")
        images[file_name] = score_histogram_png(evaluation, f"{detector}: score distribution")
    return images


# -- sections --------------------------------------------------------------------------------
def _summary_table(evaluations: Mapping[str, DetectorEvaluation]) -> str:
    ks, types = ordered_ks(evaluations), ordered_types(evaluations)
    header = [
        "detector",
        "ROC-AUC [95% CI]",
        "PR-AUC [95% CI]",
        "precision",
        "recall",
        "F1",
        *(f"p@{k}" for k in ks),
        "alerts/day",
        *(f"recall {t}" for t in types),
    ]
    rows = []
    for detector, e in evaluations.items():
        operating = next(row for row in e.threshold_table if row.kind == "operating")
        type_recalls = [
            _number(e.type_recall[t].recall) if t in e.type_recall else DASH for t in types
        ]
        rows.append(
            [
                detector,
                _with_ci(e.roc_auc),
                _with_ci(e.pr_auc),
                _number(e.precision),
                _number(e.recall),
                _number(e.f1),
                *(_number(e.precision_at_k.get(k)) for k in ks),
                f"{operating.flagged_per_day:.1f}",
                *type_recalls,
            ]
        )
    return markdown_table(header, rows)


def _threshold_section(e: DetectorEvaluation) -> str:
    header = ["row", "threshold", "TPR", "FPR", "precision", "flagged user-days", "flagged/day"]
    rows = [
        [
            row.name,
            _threshold(row.threshold),
            _number(row.tpr),
            _percent(row.fpr),
            _number(row.precision),
            str(row.flagged),
            f"{row.flagged_per_day:.1f}",
        ]
        for row in e.threshold_table
    ]
    return "#### Threshold table\n\n" + markdown_table(header, rows)


def _confusion_section(e: DetectorEvaluation) -> str:
    if e.confusion is None:
        return ""
    c = e.confusion
    table = markdown_table(
        ["", "flagged", "not flagged"],
        [["abnormal", str(c.tp), str(c.fn)], ["normal", str(c.fp), str(c.tn)]],
    )
    return f"#### Confusion matrix (score > {_threshold(e.threshold)})\n\n{table}"


def _type_recall_section(e: DetectorEvaluation) -> str:
    if not e.type_recall:
        return ""
    rows = [
        [name, str(r.n), str(r.detected), _number(r.recall)] for name, r in e.type_recall.items()
    ]
    return "#### Recall per anomaly type\n\n" + markdown_table(
        ["anomaly type", "abnormal user-days", "detected", "recall"], rows
    )


def _distribution_section(e: DetectorEvaluation) -> str:
    return "#### Score distribution\n\n" + markdown_table(
        list(e.score_summary), [[f"{v:.4g}" for v in e.score_summary.values()]]
    )


def _stability_section(e: DetectorEvaluation) -> str:
    if e.stability is None:
        return ""
    s = e.stability
    rho = DASH if s.spearman is None else f"{s.spearman:.3f}"
    return (
        f"#### Stability\n\nSpearman rank correlation with the previous model's scores: "
        f"**{rho}** on {s.n_matched} of {s.n_rows} user-days scored by both."
    )


def _detector_section(detector: str, e: DetectorEvaluation, images: Mapping[str, bytes]) -> str:
    parts = [
        f"### {detector}",
        f"{e.n_user_days} user-days over {e.n_days} days, {e.n_labelled} labelled "
        f"({e.n_positive} abnormal); operating threshold {_threshold(e.threshold)}.",
    ]
    if e.quality_measurable:
        parts.append(
            f"At the threshold: precision {_number(e.precision)}, recall "
            f"{_number(e.recall)}, F1 {_number(e.f1)}."
        )
    else:
        parts.append(
            "**Quality cannot be measured for this detector**: the figures below are "
            "score distributions and expected alert volumes, not accuracy."
        )
    parts += [
        "\n".join(f"- {note}" for note in e.notes),
        _confusion_section(e),
        _type_recall_section(e),
        _threshold_section(e),
        _distribution_section(e),
        _stability_section(e),
    ]
    histogram = images.get(histogram_file(detector))
    if histogram is not None:
        parts.append(png_to_markdown(histogram, f"{detector} score histogram"))
    return "\n\n".join(part for part in parts if part)


def _render(
    evaluations: Mapping[str, DetectorEvaluation], title: str, images: Mapping[str, bytes]
) -> str:
    if not evaluations:
        raise ValueError("a report needs at least one evaluation")
    parts = [f"# {title}"]
    if not any(e.quality_measurable for e in evaluations.values()):
        parts.append(
            "> **Quality cannot be measured**: the held-out user-days carry no usable "
            "labels (none, or only one class). This report shows score distributions, "
            "expected alert volumes and stability only; it cannot say whether any "
            "detector finds anomalies."
        )
    parts += ["## Summary", _summary_table(evaluations)]
    curves = [
        png_to_markdown(images[name], alt)
        for name, alt in ((ROC_FILE, "ROC curves"), (PR_FILE, "Precision-recall curves"))
        if name in images
    ]
    if curves:
        parts += ["## Curves", "\n\n".join(curves)]
    parts.append("## Detectors")
    parts += [_detector_section(detector, e, images) for detector, e in evaluations.items()]
    return "\n\n".join(parts) + "\n"


# -- public ----------------------------------------------------------------------------------
def render_report(
    evaluations: Mapping[str, DetectorEvaluation], *, title: str, plots: bool = True
) -> str:
    """Markdown report of one or more detectors evaluated on the same held-out user-days."""
    return _render(evaluations, title, report_images(evaluations) if plots else {})


def write_report(
    directory: str | Path,
    evaluations: Mapping[str, DetectorEvaluation],
    *,
    title: str,
    plots: bool = True,
) -> ReportPaths:
    """Write ``report.md``, the PNG plots and ``evaluation.json`` into ``directory`` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    images = report_images(evaluations) if plots else {}
    report = directory / REPORT_FILE
    report.write_text(_render(evaluations, title, images), encoding="utf-8")
    image_paths = []
    for file_name, png in images.items():
        path = directory / file_name
        path.write_bytes(png)
        image_paths.append(path)
    evaluation_json = save_evaluations(directory / EVALUATION_FILE, evaluations)
    return ReportPaths(
        directory=directory,
        report=report,
        evaluation_json=evaluation_json,
        images=tuple(image_paths),
    )
