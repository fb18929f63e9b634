"""Label-free detection quality on a "signup + purchase" fraud log, through the real path.

    .venv/bin/python benchmarks/bench_fraud_log.py [--rows 30000] [--days 365]

It writes the generated one-year fraud log of the onboarding tests (``tests/fraud_log_history.py``:
``M/D/YYYY H:MM`` times, a ``class`` column, fraud rings that buy a minute or two after signing
up), splits it into day files exactly as ``anomaly-pipeline onboard --labels-column class`` does
(``onboarding.history.split_history``), loads them (``ingest.load_events`` / ``load_labels``),
builds the features with the project's dbt models, fits every label-free candidate of
``bench_cold_start`` on the older days **without labels** and scores the newest ``--holdout``
share of days against the ``class`` labels (a fraud row labels its user on the days of its
signup and of its purchase).

It prints ROC-AUC / PR-AUC per candidate and of the one-line rule "−log(signup→purchase gap)"
(the gap taken from the raw file, for every labelled user-day), then the top reason codes of
the best candidate's 1,000 highest held-out user-days (reasons as scoring gives them: the
training window's ``ReasonCoder`` with the detector's contributions). The last line::

    bench-fraud-log best=<name> roc_auc=<x> pr_auc=<x> rule_roc_auc=<x> rule_pr_auc=<x>
    top_reason=<code>:<share> fraud_top_reason=<code>:<share>

Run it from another checkout on PYTHONPATH to measure that checkout's features (the dbt project
is the imported package's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
from bench_cold_start import evaluate
from sim_features import build_dbt_features, split_days
from sklearn.metrics import average_precision_score, roc_auc_score

from anomaly_pipeline.adapters.registry import source_reader
from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.ingest import load_events, load_labels
from anomaly_pipeline.onboarding.history import split_history
from anomaly_pipeline.privacy import pseudonymize
from anomaly_pipeline.reasons import ReasonCoder
from anomaly_pipeline.training_set import load_user_days

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fraud_log_history import write_fraud_log  # the tests' generator

START = datetime(2025, 11, 1)
TIME_FORMAT = "%m/%d/%Y %H:%M"
PSEUDONYM_KEY = "bench-fraud-log-key"
TOP_USER_DAYS = 1000
RESULT_FORMAT = (
    "bench-fraud-log best={best} roc_auc={roc:.3f} pr_auc={pr:.3f} rule_roc_auc={rule_roc:.3f} "
    "rule_pr_auc={rule_pr:.3f} top_reason={top} fraud_top_reason={fraud_top}"
)


def build(root: Path, rows: int, days: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fraud log → day files → raw tables → dbt features; (user-days with labels, raw log)."""
    csv = write_fraud_log(root / "fraud_log.csv", rows=rows, start=START, days=days)
    landing = root / "landing"
    split = split_history(
        source_reader("fraud_log", time_format=TIME_FORMAT),
        csv,
        landing_events=landing / "events",
        landing_labels=landing / "labels",
        work_dir=root / "split",
        source="fraud_log",
        labels_column="class",
        now=datetime.now(UTC),
    )
    warehouse = root / "warehouse.duckdb"
    load_events(
        warehouse,
        landing / "events",
        split.days,
        source_format="canonical",
        pattern="events_{day}.*",
        settle_s=0,
    )
    load_labels(warehouse, landing / "labels", split.days, settle_s=0)
    build_dbt_features(warehouse, split.days, root / "dbt", PSEUDONYM_KEY)
    return load_user_days(warehouse, split.days), pl.read_csv(csv)


def rule_scores(test: pl.DataFrame, log: pl.DataFrame) -> np.ndarray:
    """−log(1 + signup→purchase gap in seconds) of each user-day's user, from the raw file."""
    key = PSEUDONYM_KEY.encode()
    gaps = log.select(
        user_key=pl.col("user_id")
        .cast(pl.String)
        .map_elements(lambda user: pseudonymize(user, key), return_dtype=pl.String),
        gap_s=(
            pl.col("purchase_time").str.strptime(pl.Datetime, TIME_FORMAT)
            - pl.col("signup_time").str.strptime(pl.Datetime, TIME_FORMAT)
        ).dt.total_seconds(),
    )
    joined = test.select("user_key").join(gaps, on="user_key", how="left", maintain_order="left")
    return -np.log1p(joined["gap_s"].fill_null(np.inf).clip(0).to_numpy().astype(float))


def top_reasons(
    train: pl.DataFrame, test: pl.DataFrame, result: dict
) -> tuple[Counter[str], Counter[str]]:
    """Top reason code of each of the ``TOP_USER_DAYS`` highest-scored test user-days, and of
    the labelled fraud among them."""
    top = test[np.argsort(-result["scores"], kind="stable")[:TOP_USER_DAYS]]
    rows = top.select(FEATURE_COLUMNS)
    coder = ReasonCoder().fit(train.select(FEATURE_COLUMNS), FEATURE_COLUMNS)
    detector = result["detector"]
    contributions = detector.feature_contributions(feature_matrix(rows, FEATURE_COLUMNS))
    codes = [row[0] if row else "(none)" for row in coder.explain(rows, contributions).codes]
    fraud = top["label"].fill_null(0).to_list()
    return Counter(codes), Counter(c for c, f in zip(codes, fraud, strict=True) if f)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--holdout", type=float, default=0.3, help="share of newest days scored")
    parser.add_argument("--save", type=Path, help="also write the labelled user-days (Parquet)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_fraud_log_") as tmp:
        frame, log = build(Path(tmp), args.rows, args.days)
    if args.save:
        frame.write_parquet(args.save)
    days = sorted(frame["event_day"].unique().to_list())
    holdout_from: date = days[int(len(days) * (1 - args.holdout))]
    train = frame.filter(pl.col("event_day") < holdout_from)
    test = frame.filter(pl.col("event_day") >= holdout_from)
    truth = test["label"].fill_null(0).to_numpy()
    print(
        f"{frame.height:,} user-days over {len(days)} days; scored {test.height:,} user-days "
        f"from {holdout_from} ({int(truth.sum()):,} labelled fraud), fitted on {train.height:,}"
    )
    results = evaluate(split_days(frame, holdout_from))
    for name, result in results.items():
        print(f"  {name}: ROC-AUC {result['roc_auc']:.3f} PR-AUC {result['pr_auc']:.3f}")
    rule = rule_scores(test, log)
    rule_roc, rule_pr = roc_auc_score(truth, rule), average_precision_score(truth, rule)
    print(f"  rule -log(signup→purchase gap): ROC-AUC {rule_roc:.3f} PR-AUC {rule_pr:.3f}")
    best = max(results, key=lambda n: (results[n]["pr_auc"], results[n]["roc_auc"]))
    reasons, fraud_reasons = top_reasons(train, test, results[best])
    n_fraud = sum(fraud_reasons.values())
    print(f"top reason of the {TOP_USER_DAYS:,} highest held-out user-days ({best}):")
    for code, count in reasons.most_common(6):
        print(f"  {code}: {count / TOP_USER_DAYS:.1%}")
    print(f"top reason of the {n_fraud:,} labelled fraud user-days among them:")
    for code, count in fraud_reasons.most_common(4):
        print(f"  {code}: {count / max(n_fraud, 1):.1%}")
    code, count = reasons.most_common(1)[0]
    fraud_code, fraud_count = fraud_reasons.most_common(1)[0] if n_fraud else ("(none)", 0)
    print(
        RESULT_FORMAT.format(
            best=best,
            roc=results[best]["roc_auc"],
            pr=results[best]["pr_auc"],
            rule_roc=rule_roc,
            rule_pr=rule_pr,
            top=f"{code}:{count / TOP_USER_DAYS:.2f}",
            fraud_top=f"{fraud_code}:{fraud_count / max(n_fraud, 1):.2f}",
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
