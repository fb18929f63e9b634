"""anomaly_pipeline.evaluation: metrics, threshold tables, comparison, plots and reports."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    average_precision_score,
    roc_auc_score,
    roc_curve,
)

from anomaly_pipeline.evaluation import (
    DetectorEvaluation,
    ScoredFrameError,
    compare_detectors,
    evaluate_detector,
    load_evaluations,
    png_to_markdown,
    pr_curves_png,
    render_report,
    roc_curves_png,
    score_histogram_png,
    write_report,
)

FIRST_DAY = dt.date(2026, 3, 1)
TYPES = ("account_takeover", "click_bot", "scraping")


def scored_frame(
    n: int = 3000,
    *,
    n_days: int = 3,
    prevalence: float = 0.05,
    separation: float = 2.5,
    seed: int = 7,
) -> pl.DataFrame:
    """Held-out user-days: normal scores N(0, 1), abnormal N(separation, 1), types round-robin."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < prevalence).astype(np.int8)
    score = rng.normal(size=n) + separation * label
    positive_index = np.cumsum(label) - 1
    anomaly_type = [
        TYPES[i % len(TYPES)] if y else None for i, y in zip(positive_index, label, strict=True)
    ]
    return pl.DataFrame(
        {
            "user_key": [f"user-{i // n_days}" for i in range(n)],
            "event_day": [FIRST_DAY + dt.timedelta(days=i % n_days) for i in range(n)],
            "score": score,
            "label": label,
            "anomaly_type": pl.Series(anomaly_type, dtype=pl.String),
        }
    )


def tiny_frame(
    scores: list[float], labels: list[int | None], types: list[str | None] | None = None
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_key": [f"u{i}" for i in range(len(scores))],
            "event_day": [FIRST_DAY] * len(scores),
            "score": scores,
            "label": pl.Series(labels, dtype=pl.Int64),
            "anomaly_type": pl.Series(types or [None] * len(scores), dtype=pl.String),
        }
    )


def unlabelled(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(label=None, anomaly_type=None)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return scored_frame()


@pytest.fixture(scope="module")
def evaluation(frame: pl.DataFrame) -> DetectorEvaluation:
    return evaluate_detector(frame, threshold=1.8, n_bootstrap=100, seed=3)


# -- metrics -------------------------------------------------------------------------------------
def test_metrics_by_hand() -> None:
    # ranked by score: 0.9 (1), 0.8 (0), 0.7 (1), 0.6 (1), 0.5 (0), 0.4 (0), 0.3 (1), 0.2 (0)
    frame = tiny_frame([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2], [1, 0, 1, 1, 0, 0, 1, 0])
    result = evaluate_detector(frame, threshold=0.55, ks=(1,), n_bootstrap=0)
    assert result.quality_measurable
    # ROC-AUC: positive/negative pairs ranked right, 4 + 3 + 3 + 1 of 4 × 4
    assert result.roc_auc.value == pytest.approx(11 / 16)
    # PR-AUC (average precision): recall steps of 1/4 at precisions 1, 2/3, 3/4, 4/7
    assert result.pr_auc.value == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7) / 4)
    # flagged at or above 0.55: 0.9, 0.8, 0.7, 0.6 → three of the four positives, one negative
    confusion = result.confusion
    assert (confusion.tn, confusion.fp, confusion.fn, confusion.tp) == (3, 1, 1, 3)
    assert (result.precision, result.recall, result.f1) == pytest.approx((0.75, 0.75, 0.75))
    assert (result.n_user_days, result.n_days, result.n_labelled, result.n_positive) == (8, 1, 8, 4)


def test_tied_scores_count_half_in_roc_auc() -> None:
    result = evaluate_detector(
        tiny_frame([0.5, 0.5, 0.1], [1, 0, 0]), threshold=0.5, ks=(1,), n_bootstrap=0
    )
    assert result.roc_auc.value == pytest.approx(0.75)  # one pair won, one tied
    # both tied rows sit at the same rank: precision 1/2 at recall 1
    assert result.pr_auc.value == pytest.approx(0.5)


def test_day_and_row_counts(frame: pl.DataFrame, evaluation: DetectorEvaluation) -> None:
    assert evaluation.n_user_days == 3000 and evaluation.n_days == 3
    assert evaluation.n_positive == int(frame["label"].sum()) and evaluation.n_labelled == 3000


def test_bootstrap_intervals_contain_estimate_and_are_seeded(
    frame: pl.DataFrame, evaluation: DetectorEvaluation
) -> None:
    for estimate in (evaluation.roc_auc, evaluation.pr_auc):
        assert estimate.ci_low < estimate.value < estimate.ci_high
        assert estimate.ci_high - estimate.ci_low < 0.2
    assert evaluation.n_bootstrap_valid == 100
    again = evaluate_detector(frame, threshold=1.8, n_bootstrap=100, seed=3)
    other = evaluate_detector(frame, threshold=1.8, n_bootstrap=100, seed=4)
    assert again.pr_auc == evaluation.pr_auc
    assert other.pr_auc.ci_low != evaluation.pr_auc.ci_low
    assert evaluate_detector(frame, threshold=1.8, n_bootstrap=0).pr_auc.ci_low is None


def test_weighted_bootstrap_equals_resampling_rows(frame: pl.DataFrame) -> None:
    """The sample-weight shortcut gives exactly the intervals of resampling rows by index."""
    y, s = frame["label"].to_numpy(), frame["score"].to_numpy()
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    rng = np.random.default_rng(5)
    roc, pr = [], []
    for _ in range(30):
        index = rng.integers(0, len(y), size=len(y))
        roc.append(roc_auc_score(y[index], s[index]))
        pr.append(average_precision_score(y[index], s[index]))
    result = evaluate_detector(frame, threshold=1.8, n_bootstrap=30, seed=5)
    assert (result.roc_auc.ci_low, result.roc_auc.ci_high) == pytest.approx(
        tuple(np.percentile(roc, (2.5, 97.5))), abs=1e-12
    )
    assert (result.pr_auc.ci_low, result.pr_auc.ci_high) == pytest.approx(
        tuple(np.percentile(pr, (2.5, 97.5))), abs=1e-12
    )


def test_bootstrap_skips_single_class_resamples() -> None:
    frame = tiny_frame([0.1, 0.2, 0.3, 0.9, 0.4, 0.5], [0, 0, 0, 1, 0, 0])
    result = evaluate_detector(frame, threshold=0.5, ks=(1,), n_bootstrap=50)
    assert 0 < result.n_bootstrap_valid < 50
    assert any("bootstrap resamples held a single class" in note for note in result.notes)


def test_operating_threshold_flags_at_or_above() -> None:
    frame = tiny_frame([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1])
    result = evaluate_detector(frame, threshold=0.5, ks=(1,), n_bootstrap=0)
    assert (result.confusion.tp, result.confusion.fp) == (2, 1)
    assert result.threshold_table[0].flagged == 3


def test_precision_at_k_by_hand() -> None:
    # ranked by score: 0.9 (1), 0.8 (0), 0.7 (1), 0.6 (1), 0.3 (0), 0.1 (0)
    frame = tiny_frame([0.1, 0.6, 0.9, 0.3, 0.8, 0.7], [0, 1, 1, 0, 0, 1])
    result = evaluate_detector(frame, threshold=0.5, ks=(1, 2, 4, 6, 10), n_bootstrap=0)
    assert result.precision_at_k == {1: 1.0, 2: 0.5, 4: 0.75, 6: 0.5, 10: None}
    assert any("precision@k is undefined" in note for note in result.notes)


def test_recall_per_anomaly_type() -> None:
    frame = tiny_frame(
        scores=[0.9, 0.2, 0.8, 0.7, 0.1, 0.95, 0.3, 0.05],
        labels=[1, 1, 1, 1, 1, 1, 0, 0],
        types=["click_bot", "click_bot", "scraping", "scraping", "scraping", None, None, None],
    )
    result = evaluate_detector(frame, threshold=0.5, ks=(1,), n_bootstrap=0)
    recalls = {name: (r.n, r.detected, r.recall) for name, r in result.type_recall.items()}
    assert recalls == {"click_bot": (2, 1, 0.5), "scraping": (3, 2, pytest.approx(2 / 3))}
    assert result.recall == pytest.approx(4 / 6)  # the untyped positive counts overall
    assert any("carry no anomaly type" in note for note in result.notes)


# -- threshold table -----------------------------------------------------------------------------
def test_threshold_table_rows_are_monotone_and_respect_fpr_targets(
    frame: pl.DataFrame, evaluation: DetectorEvaluation
) -> None:
    rows = {row.name: row for row in evaluation.threshold_table}
    assert list(rows) == [
        "operating",
        "p90",
        "p95",
        "p99",
        "p99.5",
        "fpr<=0.1%",
        "fpr<=1%",
        "fpr<=5%",
    ]
    percentile = [r for r in evaluation.threshold_table if r.kind == "percentile"]
    fpr_rows = [r for r in evaluation.threshold_table if r.kind == "fpr_target"]
    assert [r.threshold for r in percentile] == sorted(r.threshold for r in percentile)
    assert [r.flagged for r in percentile] == sorted((r.flagged for r in percentile), reverse=True)
    assert rows["p90"].flagged == 300 and rows["p99"].flagged == 30
    assert [r.threshold for r in fpr_rows] == sorted((r.threshold for r in fpr_rows), reverse=True)
    assert [r.tpr for r in fpr_rows] == sorted(r.tpr for r in fpr_rows)

    y, s = frame["label"].to_numpy(), frame["score"].to_numpy()
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for row in fpr_rows:
        assert row.fpr <= row.target
        assert row.tpr == pytest.approx(tpr[fpr <= row.target].max())
        flagged = s >= row.threshold
        assert row.flagged == flagged.sum()
        assert row.fpr == pytest.approx(flagged[y == 0].mean())
    for row in evaluation.threshold_table:
        assert row.flagged_per_day == pytest.approx(row.flagged / 3)
    assert rows["operating"].tpr == evaluation.recall
    assert rows["operating"].precision == evaluation.precision


# -- partial and missing labels ------------------------------------------------------------------
def test_no_labels_reports_distribution_volume_and_stability(frame: pl.DataFrame) -> None:
    previous = frame.select("user_key", "event_day", score=pl.col("score") * 3 + 1).head(2000)
    result = evaluate_detector(unlabelled(frame), threshold=1.8, previous=previous)
    assert not result.quality_measurable
    assert result.roc_auc is None and result.pr_auc is None and result.confusion is None
    assert result.precision_at_k == {} and result.type_recall == {}
    assert [r.kind for r in result.threshold_table] == ["operating"] + ["percentile"] * 4
    assert all(r.tpr is None and r.precision is None for r in result.threshold_table)
    assert result.threshold_table[0].flagged == int((frame["score"] > 1.8).sum())
    assert result.score_summary["p50"] == pytest.approx(frame["score"].median())
    assert result.stability.spearman == pytest.approx(1.0)
    assert (result.stability.n_matched, result.stability.n_rows) == (2000, 3000)
    assert sum(result.histogram.unlabelled) == 3000 and sum(result.histogram.normal) == 0
    assert any("no user-day is labelled" in note for note in result.notes)


def test_single_class_labels_are_not_measurable() -> None:
    result = evaluate_detector(tiny_frame([0.1, 0.2, 0.9], [0, 0, 0]), threshold=0.5)
    assert not result.quality_measurable
    assert any("are all normal" in note for note in result.notes)


def test_partially_labelled_uses_labelled_rows_for_quality(frame: pl.DataFrame) -> None:
    partial = frame.with_columns(
        label=pl.when(pl.col("event_day") == FIRST_DAY).then(None).otherwise(pl.col("label")),
        anomaly_type=pl.when(pl.col("event_day") == FIRST_DAY)
        .then(None)
        .otherwise(pl.col("anomaly_type")),
    )
    result = evaluate_detector(partial, threshold=1.8, n_bootstrap=0)
    labelled = partial.filter(pl.col("label").is_not_null())
    assert result.n_labelled == labelled.height == 2000
    assert result.roc_auc.value == pytest.approx(
        roc_auc_score(labelled["label"].to_numpy(), labelled["score"].to_numpy())
    )
    assert result.threshold_table[0].flagged == int((frame["score"] > 1.8).sum())
    assert any("unlabelled" in note for note in result.notes)


# -- input contract ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("anomaly_type"), "lacks column(s) ['anomaly_type']"),
        (lambda f: f.head(0), "has no rows"),
        (lambda f: pl.concat([f, f.head(1)]), "must be unique"),
        (lambda f: f.with_columns(score=pl.lit(float("nan"))), "'score' must be a finite"),
        (lambda f: f.with_columns(label=pl.lit(2)), "'label' must be 0, 1 or null"),
        (
            lambda f: f.with_columns(anomaly_type=pl.lit("scraping")),
            "'anomaly_type' may only be set",
        ),
        (lambda f: f.with_columns(event_day=pl.col("event_day").cast(pl.String)), "must be a Date"),
        (lambda f: f.with_columns(user_key=pl.lit(None, pl.String)), "'user_key' must not be null"),
    ],
)
def test_bad_input_names_column_and_rule(frame: pl.DataFrame, change, message: str) -> None:
    with pytest.raises(ScoredFrameError, match=re.escape(message)):
        evaluate_detector(change(frame.head(50)), threshold=1.0, n_bootstrap=0)


def test_bad_arguments_are_rejected(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite"):
        evaluate_detector(frame, threshold=float("inf"))
    with pytest.raises(ValueError, match="ks must be positive integers"):
        evaluate_detector(frame, threshold=1.0, ks=(0,))


def test_boolean_labels_are_accepted(frame: pl.DataFrame) -> None:
    as_bool = frame.head(500).with_columns(pl.col("label").cast(pl.Boolean))
    result = evaluate_detector(as_bool, threshold=1.8, n_bootstrap=0)
    assert result.n_positive == int(frame.head(500)["label"].sum())


# -- serialisation and comparison ----------------------------------------------------------------
def test_round_trip_through_json(
    frame: pl.DataFrame, evaluation: DetectorEvaluation, tmp_path
) -> None:
    no_labels = evaluate_detector(
        unlabelled(frame), threshold=1.8, previous=frame.select("user_key", "event_day", "score")
    )
    for original in (evaluation, no_labels):
        text = json.dumps(original.to_dict())
        assert DetectorEvaluation.from_dict(json.loads(text)) == original
    assert "NaN" not in json.dumps(evaluation.to_dict())


def test_compare_detectors_side_by_side(
    frame: pl.DataFrame, evaluation: DetectorEvaluation
) -> None:
    weaker = evaluate_detector(scored_frame(separation=1.0), threshold=1.0, n_bootstrap=20)
    no_labels = evaluate_detector(unlabelled(frame), threshold=1.8)
    table = compare_detectors({"strong": evaluation, "weak": weaker, "unlabelled": no_labels})
    assert table["detector"].to_list() == ["strong", "weak", "unlabelled"]
    for column in (
        "roc_auc",
        "roc_auc_ci_low",
        "roc_auc_ci_high",
        "pr_auc",
        "pr_auc_ci_low",
        "pr_auc_ci_high",
        "precision",
        "recall",
        "f1",
        "precision_at_10",
        "precision_at_100",
        "recall_account_takeover",
        "recall_scraping",
    ):
        assert column in table.columns
    strong = table.row(0, named=True)
    assert strong["pr_auc"] == evaluation.pr_auc.value
    assert strong["recall_click_bot"] == evaluation.type_recall["click_bot"].recall
    assert table["pr_auc"][0] > table["pr_auc"][1]
    assert table.row(2, named=True)["roc_auc"] is None
    assert table.row(2, named=True)["flagged_per_day"] > 0


# -- plots and reports ---------------------------------------------------------------------------
def _decoded_image_shape(png: bytes) -> tuple[int, ...]:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png").shape


def test_plots_decode_as_png(evaluation: DetectorEvaluation, frame: pl.DataFrame) -> None:
    no_labels = evaluate_detector(unlabelled(frame), threshold=1.8)
    evaluations = {"a": evaluation, "b": no_labels}
    for png in (
        score_histogram_png(evaluation, "a"),
        score_histogram_png(no_labels, "b"),
        roc_curves_png(evaluations),
        pr_curves_png(evaluations),
    ):
        height, width, _ = _decoded_image_shape(png)
        assert height > 100 and width > 100
    assert roc_curves_png({"b": no_labels}) is None and pr_curves_png({"b": no_labels}) is None


def test_png_to_markdown_inlines_image(evaluation: DetectorEvaluation) -> None:
    png = score_histogram_png(evaluation, "scores")
    markdown = png_to_markdown(png, "score [hist]")
    assert markdown.startswith("![score (hist)](data:image/png;base64,")
    assert base64.b64decode(markdown.split(",", 1)[1].rstrip(")")) == png
    with pytest.raises(ValueError, match="PNG signature"):
        png_to_markdown(b"not an image", "x")


def test_report_contains_tables_and_images(evaluation: DetectorEvaluation) -> None:
    weaker = evaluate_detector(scored_frame(separation=1.0), threshold=1.0, n_bootstrap=20)
    report = render_report({"iforest": evaluation, "gaussian": weaker}, title="Held-out week")
    assert report.startswith("# Held-out week")
    assert "| detector | ROC-AUC [95% CI] | PR-AUC [95% CI] |" in report
    roc = evaluation.roc_auc
    assert f"| iforest | {roc.value:.3f} [{roc.ci_low:.3f}, {roc.ci_high:.3f}] |" in report
    assert "#### Confusion matrix (score > 1.8)" in report
    assert f"| abnormal | {evaluation.confusion.tp} | {evaluation.confusion.fn} |" in report
    assert "#### Recall per anomaly type" in report and "| account_takeover |" in report
    assert "#### Threshold table" in report and "| fpr<=1% |" in report and "| p99.5 |" in report
    assert report.count("data:image/png;base64,") == 4  # ROC, PR, two histograms
    assert "cannot be measured" not in report
    without = render_report({"iforest": evaluation}, title="t", plots=False)
    assert "data:image" not in without and "#### Threshold table" in without


def test_report_without_labels_says_quality_unmeasurable(frame: pl.DataFrame) -> None:
    no_labels = evaluate_detector(
        unlabelled(frame), threshold=1.8, previous=frame.select("user_key", "event_day", "score")
    )
    report = render_report({"autoencoder": no_labels}, title="No labels", plots=False)
    assert "**Quality cannot be measured**" in report
    assert "#### Score distribution" in report and "#### Stability" in report
    assert "Spearman rank correlation with the previous model's scores: **1.000**" in report
    assert "| operating | 1.8 | – | – | – |" in report
    assert "Confusion matrix" not in report and "| fpr<=" not in report


def test_write_report_writes_artifacts(evaluation: DetectorEvaluation, tmp_path) -> None:
    paths = write_report(tmp_path / "report", {"iforest": evaluation}, title="Run 42")
    assert {p.name for p in paths.files} == {
        "report.md",
        "evaluation.json",
        "roc_curves.png",
        "pr_curves.png",
        "score_histogram_iforest.png",
    }
    assert all(p.exists() and p.parent == paths.directory for p in paths.files)
    assert paths.report.read_text().startswith("# Run 42")
    assert load_evaluations(paths.evaluation_json) == {"iforest": evaluation}
    for image in paths.images:
        assert _decoded_image_shape(image.read_bytes())[0] > 100
