"""PNG plots of evaluations, and their inline Markdown form for Dagster metadata.

Plots draw from what a ``DetectorEvaluation`` stores (histogram counts, thinned curves), so a
stored ``evaluation.json`` can be re-plotted without the scores. matplotlib is imported inside the
functions: the Dagster code location imports this package at load and must not pay for it. Figures
are built with the object API on an Agg canvas (no pyplot global state), which is safe in worker
threads and never needs a display.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .results import Curve, DetectorEvaluation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def score_histogram_png(evaluation: DetectorEvaluation, title: str) -> bytes:
    """Score histogram of normal vs abnormal (and unlabelled) user-days, log-scaled counts."""
    figure, axes = _new_axes(title, "score (higher = more abnormal)", "user-days (log)")
    histogram = evaluation.histogram
    for counts, label, colour in (
        (histogram.normal, "normal", "tab:blue"),
        (histogram.abnormal, "abnormal", "tab:red"),
        (histogram.unlabelled, "unlabelled", "tab:gray"),
    ):
        if sum(counts):
            axes.stairs(
                counts,
                histogram.edges,
                label=f"{label} ({sum(counts)})",
                color=colour,
                fill=True,
                alpha=0.45,
            )
    axes.axvline(
        evaluation.threshold,
        color="black",
        linestyle="--",
        label=f"threshold {evaluation.threshold:.4g}",
    )
    axes.set_yscale("log")
    axes.legend(loc="upper right")
    return _to_png(figure)


def _overlay_png(
    curves: Mapping[str, Curve], *, title: str, xlabel: str, ylabel: str, roc: bool
) -> bytes:
    """Overlay labelled curves; ROC gets the chance diagonal, PR is drawn as a step function."""
    figure, axes = _new_axes(title, xlabel, ylabel)
    for label, curve in curves.items():
        axes.plot(curve.x, curve.y, drawstyle="default" if roc else "steps-post", label=label)
    if roc:
        axes.plot([0, 1], [0, 1], color="gray", linestyle=":", label="chance")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower right" if roc else "upper right")
    return _to_png(figure)


def roc_curves_png(evaluations: Mapping[str, DetectorEvaluation]) -> bytes | None:
    """ROC curves of every detector with labels, overlaid; ``None`` if none has labels."""
    curves = {
        f"{name} (ROC-AUC {e.roc_auc.value:.3f})": e.roc_curve
        for name, e in evaluations.items()
        if e.roc_curve is not None and e.roc_auc is not None
    }
    if not curves:
        return None
    return _overlay_png(
        curves,
        title="ROC curves",
        xlabel="false positive rate",
        ylabel="true positive rate",
        roc=True,
    )


def pr_curves_png(evaluations: Mapping[str, DetectorEvaluation]) -> bytes | None:
    """Precision-recall curves of every detector with labels, overlaid; ``None`` if none has."""
    curves = {
        f"{name} (PR-AUC {e.pr_auc.value:.3f})": e.pr_curve
        for name, e in evaluations.items()
        if e.pr_curve is not None and e.pr_auc is not None
    }
    if not curves:
        return None
    return _overlay_png(
        curves, title="Precision-recall curves", xlabel="recall", ylabel="precision", roc=False
    )


def png_to_markdown(png: bytes, alt: str) -> str:
    """``![alt](data:image/png;base64,...)``: an image Dagster's Markdown metadata shows inline."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("png_to_markdown expects PNG bytes (missing PNG signature)")
    safe_alt = alt.replace("[", "(").replace("]", ")").replace("\n", " ")
    return f"![{safe_alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
