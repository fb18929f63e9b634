"""What the detector-quality benchmarks share: simulated days through the real path into features,
split by day into training and held-out user-days with the simulator's truth.

``bench_cold_start`` and ``bench_quality`` fit candidates on the older days and score the newest
ones; both need the same feature build (landing files → ``ingest.load_events`` / ``load_labels``
→ the project's dbt models) and the same split, so they live here once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from anomaly_pipeline.detectors.preprocess import feature_matrix
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS
from anomaly_pipeline.features.catalogue import REPO_ROOT as PROJECT
from anomaly_pipeline.ingest import load_events, load_labels
from anomaly_pipeline.simulate import SimulationConfig, simulate, write_landing
from anomaly_pipeline.training_set import load_user_days

START = date(2026, 10, 1)
#: The newest days of every simulation are held out and scored; the older ones train.
HOLDOUT_DAYS = 2


def add_simulation_arguments(parser: argparse.ArgumentParser, seeds: list[int]) -> None:
    """The grid and size options both benchmarks take (``simulated_splits`` reads them)."""
    parser.add_argument("--difficulties", type=float, nargs="+", default=[0.2, 0.5, 0.8])
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--anomaly-share", type=float, default=0.03)


def simulated_splits(
    args: argparse.Namespace, prefix: str
) -> Iterator[tuple[float, int, DaySplit]]:
    """For each difficulty level and seed of ``args``: simulate every anomaly type, build the
    features in a temporary directory and yield the day split (the newest days held out)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        for difficulty in args.difficulties:
            for seed in args.seeds:
                config = SimulationConfig(
                    start_day=START,
                    n_days=args.days,
                    n_users=args.users,
                    anomaly_share=args.anomaly_share,
                    difficulty=difficulty,
                    seed=seed,
                )
                frame = build_features(config, Path(tmp) / f"d{difficulty}_s{seed}")
                yield difficulty, seed, split_days(frame, config.days[-HOLDOUT_DAYS])


def build_features(config: SimulationConfig, root: Path) -> pl.DataFrame:
    """Simulated days → landing files → raw tables → dbt features; user-days with labels."""
    sim = simulate(config)
    landing = root / "landing"
    write_landing(sim, landing / "events", landing / "labels")
    warehouse = root / "warehouse.duckdb"
    days = list(config.days)
    load_events(
        warehouse,
        landing / "events",
        days,
        source_format="canonical",
        pattern="events_{day}.parquet",
    )
    load_labels(warehouse, landing / "labels", days)
    build_dbt_features(warehouse, days, root / "dbt")
    return load_user_days(warehouse, days)


def build_dbt_features(
    warehouse: Path,
    days: list[date],
    work_dir: Path,
    pseudonym_key: str = "bench-detector-quality-key",
) -> None:
    """``dbt run`` of user_day_features and its parents, and stg_labels, over ``days`` (the dbt
    project of the imported package, so a checkout on PYTHONPATH measures its own SQL)."""
    env = {
        **os.environ,
        "ANOMALY_PIPELINE_WAREHOUSE": str(warehouse),
        "ANOMALY_PIPELINE_PSEUDONYM_KEY": pseudonym_key,
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }
    env.pop("ANOMALY_PIPELINE_DEMO", None)
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "run",
            "--select",
            "+user_day_features",
            "stg_labels",
            "--vars",
            json.dumps({"start_day": days[0].isoformat(), "end_day": days[-1].isoformat()}),
            "--project-dir",
            str(PROJECT / "dbt_features"),
            "--profiles-dir",
            str(PROJECT / "resources" / "dbt"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dbt run failed:\n{result.stdout[-5000:]}")


@dataclass(frozen=True)
class DaySplit:
    """Feature matrices of the training and held-out days with the simulator's truth.

    ``y_train`` holds 0/1 labels and NaN where a user-day has none (unknown, as in production);
    ``truth`` is the held-out 0/1 truth and ``types`` each held-out row's anomaly type or None.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    truth: np.ndarray
    types: list[str | None]


def split_days(frame: pl.DataFrame, holdout_from: date) -> DaySplit:
    """Rows before ``holdout_from`` train, the rest are held out (columns: ``FEATURE_COLUMNS``)."""
    train = frame.filter(pl.col("event_day") < holdout_from)
    test = frame.filter(pl.col("event_day") >= holdout_from)
    return DaySplit(
        X_train=feature_matrix(train, FEATURE_COLUMNS),
        y_train=train["label"].cast(pl.Float64).fill_null(np.nan).to_numpy(),
        X_test=feature_matrix(test, FEATURE_COLUMNS),
        truth=test["label"].fill_null(0).to_numpy(),
        types=test["anomaly_type"].to_list(),
    )


def pr_roc(truth: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """PR-AUC (average precision) and ROC-AUC of ``scores`` against 0/1 ``truth``."""
    return float(average_precision_score(truth, scores)), float(roc_auc_score(truth, scores))


def pr_by_type(split: DaySplit, scores: np.ndarray) -> dict[str, float]:
    """PR-AUC per anomaly type: that type's rows against the normal rows (other types left out),
    so a type's figure does not depend on how many rows of other types were drawn."""
    types = np.array([t or "" for t in split.types])
    normal = split.truth == 0
    return {
        kind: float(average_precision_score(types[keep] == kind, scores[keep]))
        for kind in sorted(set(types[split.truth == 1]) - {""})
        for keep in [normal | (types == kind)]
    }
