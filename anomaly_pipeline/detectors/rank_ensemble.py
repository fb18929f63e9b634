"""Label-free rank ensemble: the mean of member detectors' rank-normalised scores.

Why an ensemble for the cold start: without labels nothing tells which detector suits a source,
and each detector has a blind spot (a Gaussian misses a tight cluster of bots that a forest
isolates; a forest misses broken correlations the Gaussian sees). Averaging *ranks* instead of
raw scores needs no calibration between a −log density, a path length and a density ratio, and a
row that any member finds rare moves up.

Each member's raw score is rank-normalised against that member's own training scores, not
against the batch being scored, so a user-day's score never depends on which other rows were
scored with it: ``ScoreScaler`` (linear in the empirical CDF, ``tail_power=1``) maps a score to
its training rank in [0, 0.9] and spreads scores beyond the training maximum over (0.9, 1], so
the most extreme rows stay ordered instead of tying at rank 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from anomaly_pipeline.detectors.base import Detector
from anomaly_pipeline.detectors.registry import TABULAR_KINDS, load_detector, make_detector
from anomaly_pipeline.scaling import MAX_POINTS, ScoreScaler

_RANKS_FILE: Final[str] = "member_ranks.json"
_MEMBERS_DIR: Final[str] = "members"


class RankEnsembleDetector(Detector):
    """Mean of the members' training-rank-normalised scores (higher = more abnormal).

    ``members``: tabular detector kinds from the registry (each fitted on the same matrix);
    ``member_params``: constructor parameters per kind. ``feature_contributions`` averages the
    contributions of the members that have them (rows × features), or is None if none do.
    """

    kind = "rank_ensemble"

    def __init__(
        self,
        threshold_percentile: float = 99.0,
        members: Sequence[str] = ("gaussian", "isolation_forest", "lof"),
        member_params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(threshold_percentile=threshold_percentile)
        members = list(members)
        unknown = [kind for kind in members if kind not in TABULAR_KINDS or kind == self.kind]
        if not members or unknown or len(set(members)) != len(members):
            raise ValueError(
                f"members must be distinct tabular detector kinds from "
                f"{list(TABULAR_KINDS)}, got {members}"
            )
        self.members = members
        self.member_params = {kind: dict(params) for kind, params in (member_params or {}).items()}
        self.detectors_: list[Detector] = []
        self.ranks_: list[ScoreScaler] = []

    def _params(self) -> dict[str, Any]:
        return {"members": self.members, "member_params": self.member_params}

    def _fit(self, X: Any, y: np.ndarray | None) -> None:
        self.detectors_, self.ranks_ = [], []
        for kind in self.members:
            detector = make_detector(
                kind,
                threshold_percentile=self.threshold_percentile,
                **self.member_params.get(kind, {}),
            )
            detector.fit(X, y, feature_names=self.feature_names or None)
            self.detectors_.append(detector)
            self.ranks_.append(ScoreScaler(tail_power=1.0).fit(detector.decision_function(X)))

    def decision_function(self, X: Any) -> np.ndarray:
        if not self.detectors_:
            raise RuntimeError("RankEnsembleDetector is not fitted")
        ranks = [
            rank.transform(detector.decision_function(X)) / MAX_POINTS
            for detector, rank in zip(self.detectors_, self.ranks_, strict=True)
        ]
        return np.mean(ranks, axis=0)

    def feature_contributions(self, X: Any) -> np.ndarray | None:
        parts = [c for c in (d.feature_contributions(X) for d in self.detectors_) if c is not None]
        return np.mean(parts, axis=0) if parts else None

    def _save_state(self, path: Path) -> None:
        if not self.detectors_:
            raise RuntimeError("RankEnsembleDetector is not fitted; nothing to save")
        for detector in self.detectors_:
            detector.save(path / _MEMBERS_DIR / detector.kind)
        (path / _RANKS_FILE).write_text(json.dumps([rank.to_dict() for rank in self.ranks_]))

    def _load_state(self, path: Path) -> None:
        self.detectors_ = [load_detector(path / _MEMBERS_DIR / kind) for kind in self.members]
        self.ranks_ = [
            ScoreScaler.from_dict(state) for state in json.loads((path / _RANKS_FILE).read_text())
        ]
