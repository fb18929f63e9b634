"""Which detector to trust when a source has no labels: the evidence behind ``COLD_START_KIND``.

    .venv/bin/python benchmarks/bench_cold_start.py [--difficulties 0.2 0.5 0.8] [--seeds 1 2]

For each simulator difficulty level (``SimulationConfig.difficulty``: 0 = blatant anomalies,
1 = almost like normal users) and seed, it simulates days with every anomaly type, runs the real
path into features (``sim_features``: landing files → ``ingest.load_events`` / ``load_labels``
→ the project's dbt models), fits every candidate on the older days **without labels**, and
scores the newest days against the simulator's truth. Candidates: each classical detector alone
and label-free rank ensembles of them (``rank_ensemble``). The Lightning detectors are left out:
they need torchrun and minutes per fit, more than a cold start should wait for.

It prints PR-AUC / ROC-AUC per candidate, difficulty and seed, recall per anomaly type at the
97th-percentile threshold averaged over runs, and the mean over all runs; the pick is the best
mean PR-AUC (ties: ROC-AUC). The last line is machine-readable (``RESULT_FORMAT``).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np
from sim_features import DaySplit, add_simulation_arguments, pr_roc, simulated_splits

from anomaly_pipeline.detectors.registry import COLD_START_KIND, make_detector
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS

THRESHOLD_PERCENTILE = 97.0
RESULT_FORMAT = "bench-cold-start pick={pick} pr_auc={pr_auc:.3f} roc_auc={roc_auc:.3f}"

#: name → (kind, params). The ensembles are the member subsets of the three classical detectors.
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "gaussian": ("gaussian", {}),
    "isolation_forest": ("isolation_forest", {}),
    "lof": ("lof", {}),
    "rank(gaussian+isolation_forest)": (
        "rank_ensemble",
        {"members": ["gaussian", "isolation_forest"]},
    ),
    "rank(gaussian+lof)": ("rank_ensemble", {"members": ["gaussian", "lof"]}),
    "rank(isolation_forest+lof)": ("rank_ensemble", {"members": ["isolation_forest", "lof"]}),
    "rank(gaussian+isolation_forest+lof)": (
        "rank_ensemble",
        {"members": ["gaussian", "isolation_forest", "lof"]},
    ),
}


def evaluate(split: DaySplit) -> dict[str, dict[str, Any]]:
    """Fit every candidate on the training days (labels unused), score the held-out ones (each
    result keeps its fitted ``detector`` and test ``scores`` for callers that explain)."""
    truth, types = split.truth, split.types
    results = {}
    for name, (kind, params) in CANDIDATES.items():
        started = time.perf_counter()
        detector = make_detector(kind, threshold_percentile=THRESHOLD_PERCENTILE, **params)
        detector.fit(split.X_train, feature_names=list(FEATURE_COLUMNS))
        scores = detector.decision_function(split.X_test)
        flagged = scores > detector.threshold_
        recall = {
            t: float(np.mean([f for f, tt in zip(flagged, types, strict=True) if tt == t]))
            for t in sorted({t for t in types if t is not None})
        }
        pr_auc, roc_auc = pr_roc(truth, scores)
        results[name] = {
            "pr_auc": pr_auc,
            "roc_auc": roc_auc,
            "recall": recall,
            "detector": detector,
            "scores": scores,
            "seconds": time.perf_counter() - started,
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_simulation_arguments(parser, seeds=[1, 2])
    args = parser.parse_args(argv)

    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_difficulty: dict[tuple[str, float], list[float]] = defaultdict(list)
    for difficulty, seed, split in simulated_splits(args, "bench_cold_start_"):
        results = evaluate(split)
        for name, result in results.items():
            runs[name].append(result)
            by_difficulty[(name, difficulty)].append(result["pr_auc"])
        print(
            f"difficulty {difficulty:.1f} seed {seed}: "
            + ", ".join(f"{n} {r['pr_auc']:.3f}/{r['roc_auc']:.3f}" for n, r in results.items()),
            flush=True,
        )

    types = sorted({t for results in runs.values() for r in results for t in r["recall"]})
    header = [
        "candidate",
        *(f"PR-AUC d={d:.1f}" for d in args.difficulties),
        "mean PR-AUC",
        "mean ROC-AUC",
        *(f"recall {t}" for t in types),
        "fit+score s",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    summary = {}
    for name, results in runs.items():
        pr, roc = np.mean([r["pr_auc"] for r in results]), np.mean([r["roc_auc"] for r in results])
        summary[name] = (pr, roc)
        cells = [
            name,
            *(f"{np.mean(by_difficulty[(name, d)]):.3f}" for d in args.difficulties),
            f"{pr:.3f}",
            f"{roc:.3f}",
            *(f"{np.mean([r['recall'].get(t, np.nan) for r in results]):.2f}" for t in types),
            f"{np.mean([r['seconds'] for r in results]):.1f}",
        ]
        print("| " + " | ".join(cells) + " |")
    pick = max(summary, key=lambda n: summary[n])
    kind, params = CANDIDATES[pick]
    configured = make_detector(kind, **params)._params() == make_detector(COLD_START_KIND)._params()
    print(
        f"\nbest mean PR-AUC over {len(args.difficulties)} difficulty levels × "
        f"{len(args.seeds)} seeds: {pick}; the gate's cold-start default "
        f"({COLD_START_KIND} with default parameters) "
        + ("is this candidate" if configured else "is NOT this candidate: update it")
    )
    print(RESULT_FORMAT.format(pick=pick, pr_auc=summary[pick][0], roc_auc=summary[pick][1]))


if __name__ == "__main__":
    main()
