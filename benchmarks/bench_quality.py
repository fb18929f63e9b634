"""Detection quality of every detector and the rank ensemble, per anomaly type, with and without
labels: the evidence behind the detectors' defaults and ``COLD_START_KIND``.

    .venv/bin/python benchmarks/bench_quality.py [--difficulties 0.2 0.5 0.8] [--seeds 1 2 3]

For each simulator difficulty level (``SimulationConfig.difficulty``: 0 = blatant, 1 = almost like
normal users) and seed it builds features through the real path (``sim_features``), fits every
candidate on the older days and scores the held-out newest days against the simulator's truth:

* unsupervised: every detector with its default parameters, fitted without labels (alpha = 0),
  and label-free rank ensembles (the configured ``rank_ensemble`` and other member sets);
* with labels: the candidates that use them — ``boosted_head`` (a gradient-boosting classifier on
  the labelled rows over the configured rank ensemble), the autoencoder's labelled head
  (alpha = 1) alone and as a member of the rank ensemble. The other detectors ignore labels: with
  labels they score exactly as without.

It prints PR-AUC / ROC-AUC per candidate and difficulty, PR-AUC per anomaly type (that type's rows
against the normal ones) at ``--target-difficulty``, and the autoencoder's epochs against its cap.
A supervised reference that is not a detector of the project (scikit-learn's gradient boosting on
the same features and labels) shows how much of a miss with labels the features leave possible.
Targets: the configured ensemble's mean unsupervised PR-AUC is at least each single detector's, and
with labels the worst anomaly type's PR-AUC at the target difficulty is at least 0.80. The last
line is machine-readable (``RESULT_FORMAT``).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sim_features import (
    DaySplit,
    add_simulation_arguments,
    pr_by_type,
    pr_roc,
    simulated_splits,
)
from sklearn.ensemble import HistGradientBoostingClassifier

from anomaly_pipeline.detectors.registry import make_detector
from anomaly_pipeline.nn.settings import TrainerSettings

RESULT_FORMAT = (
    "bench-quality best_unsup_pr={best_unsup:.3f} best_sup_pr={best_sup:.3f} "
    "worst_type_pr={worst_type:.3f} ensemble_pr={ensemble:.3f}"
)
#: The configured label-free ensemble: ``rank_ensemble`` with its default parameters.
ENSEMBLE = "rank_ensemble"
SINGLE = ("gaussian", "isolation_forest", "lof", "hbos", "ecod", "copod", "autoencoder")

#: name → (kind, params, uses labels).
CANDIDATES: dict[str, tuple[str, dict[str, Any], bool]] = {
    **{kind: (kind, {}, False) for kind in SINGLE},
    ENSEMBLE: ("rank_ensemble", {}, False),
    "rank(gaussian+isolation_forest+lof+ecod)": (
        "rank_ensemble",
        {"members": ["gaussian", "isolation_forest", "lof", "ecod"]},
        False,
    ),
    # scikit-learn's LOF default and the previous autoencoder, against the data-sized defaults.
    "lof(n_neighbors=20)": ("lof", {"n_neighbors": 20}, False),
    "autoencoder(32/8, no noise)": (
        "autoencoder",
        {"hidden_dims": [32], "latent_dim": 8, "input_noise": 0.0},
        False,
    ),
    "autoencoder+labels": ("autoencoder", {"alpha": 1.0}, True),
    # The classifier on the labelled rows plus 0.02 of the configured ensemble's rank (its default).
    "boosted_head": ("boosted_head", {}, True),
    "rank_ensemble+autoencoder+labels": (
        "rank_ensemble",
        {
            "members": ["gaussian", "isolation_forest", "lof", "autoencoder"],
            "member_params": {"autoencoder": {"alpha": 1.0}},
        },
        True,
    ),
}


#: Not a candidate: what a supervised classifier makes of the same features and labels.
REFERENCE = "reference: gradient boosting with labels"


@dataclass
class Run:
    """One candidate on one simulation: overall and per-type figures, fit time, epochs."""

    difficulty: float
    pr: float
    roc: float
    pr_type: dict[str, float]
    seconds: float
    epochs: list[int] = field(default_factory=list)


def evaluate(split: DaySplit, difficulty: float) -> dict[str, Run]:
    """Fit every candidate on the training days (labels only where it uses them), score the rest."""
    runs = {}
    for name, (kind, params, labelled) in CANDIDATES.items():
        started = time.perf_counter()
        detector = make_detector(kind, **params)
        detector.fit(split.X_train, split.y_train if labelled else None)
        scores = detector.decision_function(split.X_test)
        pr, roc = pr_roc(split.truth, scores)
        members = getattr(detector, "detectors_", [detector])
        epochs = [d.training_report_.epochs_run for d in members if hasattr(d, "training_report_")]
        runs[name] = Run(
            difficulty, pr, roc, pr_by_type(split, scores), time.perf_counter() - started, epochs
        )
    started = time.perf_counter()
    known = ~np.isnan(split.y_train)
    reference = HistGradientBoostingClassifier(random_state=0)
    reference.fit(split.X_train[known], split.y_train[known])
    scores = reference.predict_proba(split.X_test)[:, 1]
    pr, roc = pr_roc(split.truth, scores)
    runs[REFERENCE] = Run(
        difficulty, pr, roc, pr_by_type(split, scores), time.perf_counter() - started
    )
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_simulation_arguments(parser, seeds=[1, 2, 3])
    parser.add_argument("--target-difficulty", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.target_difficulty not in args.difficulties:
        parser.error("--target-difficulty must be one of --difficulties")

    runs: dict[str, list[Run]] = defaultdict(list)
    for difficulty, seed, split in simulated_splits(args, "bench_quality_"):
        for name, run in evaluate(split, difficulty).items():
            runs[name].append(run)
        print(
            f"difficulty {difficulty:.1f} seed {seed}: {len(split.truth)} held-out "
            f"user-days, {int(split.truth.sum())} abnormal; "
            + ", ".join(f"{n} {rs[-1].pr:.3f}" for n, rs in runs.items()),
            flush=True,
        )
    report(runs, args.difficulties, args.target_difficulty)


def report(runs: dict[str, list[Run]], difficulties: list[float], target: float) -> None:
    """The tables, the targets' verdicts and the machine-readable last line."""

    def mean(name: str, value: str, at: float | None = None) -> float:
        chosen = [r for r in runs[name] if at is None or r.difficulty == at]
        return float(np.mean([getattr(r, value) for r in chosen]))

    def type_pr(name: str, at: float) -> dict[str, float]:
        chosen = [r.pr_type for r in runs[name] if r.difficulty == at]
        kinds = sorted({k for pr in chosen for k in pr})
        return {k: float(np.mean([pr[k] for pr in chosen if k in pr])) for k in kinds}

    cap = TrainerSettings().max_epochs
    header = [
        "candidate",
        "labels",
        *(f"PR-AUC d={d:.1f}" for d in difficulties),
        "mean PR-AUC",
        "mean ROC-AUC",
        f"worst type PR d={target:.1f}",
        "fit+score s",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, labelled in [*((n, c[2]) for n, c in CANDIDATES.items()), (REFERENCE, True)]:
        cells = [
            name,
            "yes" if labelled else "no",
            *(f"{mean(name, 'pr', d):.3f}" for d in difficulties),
            f"{mean(name, 'pr'):.3f}",
            f"{mean(name, 'roc'):.3f}",
            f"{min(type_pr(name, target).values()):.3f}",
            f"{mean(name, 'seconds'):.1f}",
        ]
        print("| " + " | ".join(cells) + " |")

    kinds = sorted({k for rs in runs.values() for r in rs for k in r.pr_type})
    print(f"\nPR-AUC per anomaly type at difficulty {target:.1f} (mean over seeds):")
    print("\n| candidate | " + " | ".join(kinds) + " |\n|" + "---|" * (len(kinds) + 1))
    for name in [*CANDIDATES, REFERENCE]:
        by_type = type_pr(name, target)
        print(f"| {name} | " + " | ".join(f"{by_type.get(k, np.nan):.3f}" for k in kinds) + " |")

    epochs = [e for rs in runs.values() for r in rs for e in r.epochs]
    print(
        f"\nautoencoder epochs (cap {cap}): min {min(epochs)}, median "
        f"{int(np.median(epochs))}, max {max(epochs)}; early stopping triggered in "
        f"{sum(e < cap for e in epochs)} of {len(epochs)} fits"
    )
    unsup = [n for n, c in CANDIDATES.items() if not c[2]]
    sup = [n for n, c in CANDIDATES.items() if c[2]]
    best_unsup = max(unsup, key=lambda n: mean(n, "pr"))
    best_sup = max(sup, key=lambda n: mean(n, "pr"))
    worst_type = min(type_pr(best_sup, target).values())
    ensemble = mean(ENSEMBLE, "pr")
    beaten_by = [n for n in SINGLE if mean(n, "pr") > ensemble]
    print(
        f"best unsupervised: {best_unsup}; best with labels: {best_sup}.\n"
        f"target ensemble ≥ every single detector (mean unsupervised PR-AUC {ensemble:.3f}): "
        + ("met" if not beaten_by else f"MISSED, beaten by {beaten_by}")
        + f"\ntarget worst type PR-AUC with labels ≥ 0.80 at difficulty {target:.1f} "
        f"({best_sup}: {worst_type:.3f}): " + ("met" if worst_type >= 0.8 else "MISSED")
    )
    print(
        RESULT_FORMAT.format(
            best_unsup=mean(best_unsup, "pr"),
            best_sup=mean(best_sup, "pr"),
            worst_type=worst_type,
            ensemble=ensemble,
        )
    )


if __name__ == "__main__":
    main()
