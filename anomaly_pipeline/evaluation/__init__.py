"""Evaluation of detectors on held-out user-days: metrics, threshold tables, plots, reports and
the champion gate. Domain core: no Dagster; matplotlib is imported only when a plot is drawn.
"""

from .compare import compare_detectors
from .evaluate import evaluate_detector
from .gate import (
    ChallengerChoice,
    GateDecision,
    GateVerdict,
    decide_promotion,
    gate_verdict,
    pick_challenger,
)
from .inputs import ScoredFrameError, validate_scored_frame
from .plots import png_to_markdown, pr_curves_png, roc_curves_png, score_histogram_png
from .report import ReportPaths, render_report, write_report
from .results import DetectorEvaluation, load_evaluations, save_evaluations

__all__ = [
    "ChallengerChoice",
    "DetectorEvaluation",
    "GateDecision",
    "GateVerdict",
    "ReportPaths",
    "ScoredFrameError",
    "compare_detectors",
    "decide_promotion",
    "evaluate_detector",
    "gate_verdict",
    "load_evaluations",
    "pick_challenger",
    "png_to_markdown",
    "pr_curves_png",
    "render_report",
    "roc_curves_png",
    "save_evaluations",
    "score_histogram_png",
    "validate_scored_frame",
    "write_report",
]
