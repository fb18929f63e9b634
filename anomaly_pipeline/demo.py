"""`make demo`: simulate days of logs, materialise the whole graph, print what it found.

Runs the same jobs a data engineer launches from the Dagster UI, on the persistent instance under
``$DAGSTER_HOME`` (inside the data directory), so `make dev` shows every run afterwards:
1. ``ingest_features_job`` over the whole range as one run (a single-run backfill),
2. ``training_job`` (training set → baselines + Lightning models via torchrun → evaluation →
   champion gate → champion),
3. ``scoring_job`` over the range (scores, alerts, drift).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, date, datetime, timedelta

from anomaly_pipeline.paths import data_home
from anomaly_pipeline.runs import range_tags, run_job

LAYER_TABLES = (
    ("raw_events", "raw.raw_events"),
    ("quarantined_events", "raw.quarantined_events"),
    ("event_labels", "raw.event_labels"),
    ("stg_events", "features.stg_events"),
    ("int_sessions", "features.int_sessions"),
    ("user_day_features", "features.user_day_features"),
    ("behaviour_sequences", "features.behaviour_sequences"),
    ("daily_anomaly_scores", "scoring.daily_anomaly_scores"),
    ("anomaly_alerts", "scoring.anomaly_alerts"),
    ("feature_drift", "monitoring.feature_drift"),
)


def demo_days(n_days: int, today: date | None = None) -> list[date]:
    """The ``n_days`` complete UTC days before today, oldest first."""
    today = today or datetime.now(UTC).date()
    return [today - timedelta(days=n_days - i) for i in range(n_days)]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_ci(row: dict, metric: str) -> str:
    low, high = _num(row[f"{metric}_ci_low"]), _num(row[f"{metric}_ci_high"])
    return f"{_num(row[metric])} [{low}, {high}]"


def summary(days: list[date]) -> str:
    """Rows per layer, the top users with their reasons, and quality against the labels."""
    from anomaly_pipeline import warehouse
    from anomaly_pipeline.evaluation import compare_detectors, evaluate_detector, load_evaluations

    home = data_home()
    lines = ["", "Rows per layer:"]
    with warehouse.connect(home.warehouse, read_only=True) as conn:
        for name, table in LAYER_TABLES:
            count = (
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                if warehouse.table_exists(conn, table)
                else None
            )
            n = count[0] if count else 0
            lines.append(f"  {name:<22} {n:>10,}")
        scored = conn.execute("""
            SELECT s.user_key, s.event_day, s.score, s.threshold, s.outcome, s.reasons,
                   s.model_version, s.model_kind, l.anomaly_type,
                   CASE WHEN l.anomaly_type IS NULL THEN 0 ELSE 1 END AS label
            FROM scoring.daily_anomaly_scores s
            LEFT JOIN features.stg_labels l USING (user_key, event_day)""").pl()
    top = scored.sort("score", descending=True).head(10)
    lines += ["", "Top 10 user-days by score:"]
    for row in top.iter_rows(named=True):
        truth = row["anomaly_type"] or "normal"
        lines.append(
            f"  {row['user_key'][:10]}  {row['event_day']}  {row['score']:6.1f}  "
            f"{row['outcome']:<6}  truth={truth:<16} {'; '.join(row['reasons'][:2])}"
        )
    champion = scored.row(0, named=True)
    evaluation = evaluate_detector(
        scored.select("user_key", "event_day", "score", "label", "anomaly_type"),
        threshold=float(scored["threshold"].to_numpy().max()),
        n_bootstrap=0,
    )
    pr_auc, roc_auc = evaluation.pr_auc, evaluation.roc_auc
    lines += [
        "",
        f"Champion ({champion['model_kind']} v{champion['model_version']}) on all "
        f"{len(days)} days vs the simulator's labels (training days included):",
        f"  precision {_num(evaluation.precision)}  recall {_num(evaluation.recall)}  "
        f"PR-AUC {_num(pr_auc.value if pr_auc else None)}  "
        f"ROC-AUC {_num(roc_auc.value if roc_auc else None)}",
    ]
    reports = sorted(
        (home.artifacts / "evaluations").glob("*/candidates.json"), key=lambda p: p.stat().st_mtime
    )
    if reports:
        latest = reports[-1].parent
        comparison = compare_detectors(load_evaluations(reports[-1]))
        lines += [
            "",
            "Evaluation on the held-out days (every detector on the same days; 95 % bootstrap CI):",
            f"  {'detector':<17}{'ROC-AUC':<22}{'PR-AUC':<22}{'precision':>10}"
            f"{'recall':>8}{'F1':>7}",
        ]
        for row in comparison.iter_rows(named=True):
            lines.append(
                f"  {row['detector']:<17}{_with_ci(row, 'roc_auc'):<22}"
                f"{_with_ci(row, 'pr_auc'):<22}{_num(row['precision']):>10}"
                f"{_num(row['recall']):>8}{_num(row['f1']):>7}"
            )
        lines += [
            "",
            f"Full report: {latest / 'report.md'} (plots beside it)",
            "In the UI (`make dev`, http://127.0.0.1:3000): Assets → model_evaluation → "
            "latest materialization → 'report'; MLflow: `make mlflow-ui`.",
        ]
    lines.append(
        f"Data directory: {home.root} (dbt's output of the runs: {home.root / 'demo.log'})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    home = data_home().ensure()
    os.environ.setdefault("DAGSTER_HOME", str(home.dagster_home))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    days = demo_days(args.days)
    print(
        f"Simulating {args.days} days × {args.users} users ({days[0]} … {days[-1]}) into "
        f"{home.landing}"
    )
    sim = simulate(
        SimulationConfig(start_day=days[0], n_days=args.days, n_users=args.users, seed=args.seed)
    )
    write_landing(sim, home.landing_events, home.landing_labels)
    print(f"  {sim.events.height:,} events, {sim.labels.height:,} abnormal user-days")
    print("Running the jobs:")
    run_job("ingest_features_job", tags=range_tags(days))
    run_job("training_job")
    run_job("scoring_job", tags=range_tags(days))
    print(summary(days))


if __name__ == "__main__":
    main()
