"""The reason coder: the few strongest, human-readable reasons why a user-day scored high.

An analyst deciding on a review queue needs "47.0 views/min, 6× the population median", not
"feature 45 contributed 0.31". ``ReasonCoder`` learns robust population statistics per feature
(``statistics.FeatureStats``) on the training window and then, for each scored row:

1. gives every feature a robust z-score ``(x - median) / scale`` signed so that positive means
   "towards abnormal" (the catalogue's ``direction``: many views is abnormal, a tiny interval CV
   is abnormal, ...); the scale of a zero-inflated feature is floored by the population's own
   tail (``statistics``), so a 2-minute session among one-event days is not "many sigmas" out
   while a purchase 40 s after signup, days below the median delay, is — the decisive signal;
   candidates are the features at least ``min_z`` towards abnormal or, given the detector's
   per-feature contributions, those the detector pushed (contribution > 0 on the abnormal
   side): the detector says which features made the score, the population which is decisive;
2. keeps only features that apply (the catalogue's ``applies``: an interval CV needs enough
   events, a 7-day ratio needs history) and that lie on the abnormal side;
3. groups features that describe one fact into one reason (``templates``), phrased by its
   strongest member;
4. renders the ``top_k`` strongest as text stating the value and the comparison that makes it
   unusual, with a stable machine code (``high_view_rate``) alongside.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Self

import numpy as np
import polars as pl

from anomaly_pipeline.features.catalogue import BY_NAME, Direction, Feature, When
from anomaly_pipeline.reasons.statistics import FeatureStats, comparison_scale
from anomaly_pipeline.reasons.templates import template_for

CODER_FORMAT: Final[int] = 1


@dataclass(frozen=True)
class _Rule:
    """How a column outside the catalogue is judged: abnormal on both sides, compared as is,
    always applicable."""

    direction: Direction = "both"
    log: bool = False
    applies: When | None = None


def _rule(name: str) -> Feature | _Rule:
    """The catalogue entry's direction / log / applies, or the generic rule."""
    return BY_NAME.get(name) or _Rule()


@dataclass(frozen=True)
class Reason:
    """One rendered reason: stable machine ``code``, human ``text``, and its ranking strength."""

    code: str
    text: str
    feature: str
    strength: float


@dataclass(frozen=True)
class Explanation(Sequence[list[str]]):
    """``explain``'s answer: per row, the reason texts (what the sequence yields), with the
    machine codes and full ``Reason`` records alongside in the same order."""

    reasons: list[list[Reason]]

    @property
    def texts(self) -> list[list[str]]:
        return [[r.text for r in row] for row in self.reasons]

    @property
    def codes(self) -> list[list[str]]:
        return [[r.code for r in row] for row in self.reasons]

    def __getitem__(self, index: int) -> list[str]:  # type: ignore[override]
        return [r.text for r in self.reasons[index]]

    def __len__(self) -> int:
        return len(self.reasons)

    def __iter__(self) -> Iterator[list[str]]:
        return (self[i] for i in range(len(self)))


class ReasonCoder:
    """Learns population statistics per feature, then explains scored rows in words.

    ``min_z`` is the robust z-score a feature must reach to count as a reason when no detector
    contributions are given: a normal row should get no reasons rather than three weak ones.
    """

    def __init__(self, min_z: float = 2.0) -> None:
        if not min_z > 0:
            raise ValueError(f"min_z must be > 0, got {min_z}")
        self.min_z = min_z
        self.stats_: dict[str, FeatureStats] = {}
        self.feature_names_: list[str] = []

    def fit(self, features: pl.DataFrame, feature_names: Sequence[str] | None = None) -> Self:
        """Learn per-feature statistics from the training window.

        ``feature_names`` defaults to every numeric column (pass ``FEATURE_COLUMNS`` when the
        frame carries other numbers, e.g. a score). Statistics are taken over the rows where a
        feature applies (the catalogue's ``applies``); a feature that never applies gets no
        statistics and never becomes a reason.
        """
        names = (
            list(feature_names)
            if feature_names is not None
            else [c for c, t in features.schema.items() if t.is_numeric()]
        )
        _require_numeric(features, names, "features")
        if features.is_empty():
            raise ValueError("features is empty; the coder needs a training window")
        applies = self._applicability(features, names)
        self.stats_ = {}
        for j, name in enumerate(names):
            values = features.get_column(name).cast(pl.Float64).to_numpy()
            values = values[applies[:, j] & np.isfinite(values)]
            if values.size:
                rule = _rule(name)
                self.stats_[name] = FeatureStats.of(values, rule.log, rule.direction)
        self.feature_names_ = names
        return self

    def explain(
        self,
        features: pl.DataFrame,
        contributions: np.ndarray | None = None,
        top_k: int = 3,
        contribution_names: Sequence[str] | None = None,
    ) -> Explanation:
        """For each row, up to ``top_k`` reasons, strongest first (texts; ``.codes`` alongside).

        With ``contributions`` (n_rows × n_features, columns ``contribution_names``, default the
        fitted feature order) the features the detector pushed are candidates: those with a
        contribution <= 0 or on the normal side of the population median are skipped. Without,
        candidates are the features at least ``min_z`` towards abnormal. Candidates rank by z.
        """
        if not self.stats_:
            raise RuntimeError("ReasonCoder is not fitted; call fit(training features) first")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        names = [n for n in self.feature_names_ if n in self.stats_ and n in features.columns]
        _require_numeric(features, names, "features")
        z = self._z_scores(features, names)
        if contributions is None:
            candidates = z >= self.min_z
        else:
            candidates = self._pushed(features, names, z, contributions, contribution_names)
        strength = np.where(candidates, z, -np.inf)
        templates = [template_for(n) for n in names]
        # one entry per fact (a template's feature tuple), member columns by position
        grouped: dict[tuple[str, ...], list[int]] = {}
        for j, template in enumerate(templates):
            grouped.setdefault(template.features, []).append(j)
        members = list(grouped.values())
        if not members:  # none of the fitted features is in the frame: nothing to say
            return Explanation([[] for _ in range(features.height)])
        unique = [templates[m[0]] for m in members]
        # per template: strongest member feature and its strength. Ranked on strengths rounded
        # to float32, so equal facts (one purchase: its amount is the day's spend) rank in
        # feature order rather than by the last bit of a matrix product, which BLAS rounds by
        # the batch's shape: a row's reasons do not depend on the rows scored with it.
        ranked = strength.astype(np.float32)
        member_strength = np.stack([strength[:, m].max(axis=1) for m in members], axis=1)
        member_pick = [np.asarray(m)[ranked[:, m].argmax(axis=1)] for m in members]
        member_rank = np.stack([ranked[:, m].max(axis=1) for m in members], axis=1)
        order = np.argsort(-member_rank, axis=1, kind="stable")[:, :top_k]
        result: list[list[Reason]] = []
        columns = features.columns
        for i, row_values in enumerate(features.iter_rows()):
            picked = [t for t in order[i] if np.isfinite(member_strength[i, t])]
            if not picked:
                result.append([])
                continue
            row = {
                c: v
                for c, v in zip(columns, row_values, strict=True)
                if isinstance(v, (int, float))
            }
            row_reasons = []
            for t in picked:
                trigger = names[member_pick[t][i]]
                code, text = unique[t].render(row, trigger, self.stats_)
                row_reasons.append(Reason(code, text, trigger, float(member_strength[i, t])))
            result.append(row_reasons)
        return Explanation(result)

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (saved next to the model it explains)."""
        return {
            "format": CODER_FORMAT,
            "min_z": self.min_z,
            "feature_names": list(self.feature_names_),
            "stats": {name: asdict(s) for name, s in self.stats_.items()},
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a coder from ``to_dict`` output."""
        if state.get("format") != CODER_FORMAT:
            raise ValueError(
                f"reason coder state has format {state.get('format')!r}; this code "
                f"reads format {CODER_FORMAT}"
            )
        coder = cls(min_z=float(state["min_z"]))
        coder.feature_names_ = list(state["feature_names"])
        coder.stats_ = {name: FeatureStats(**values) for name, values in state["stats"].items()}
        return coder

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _applicability(features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """Boolean matrix: where each feature means something. A guard whose columns the frame
        lacks is skipped (the feature is taken as applicable) rather than failing."""
        applies = np.ones((features.height, len(names)), dtype=bool)
        present = set(features.columns)
        for j, name in enumerate(names):
            when = _rule(name).applies
            if when is not None and when.column in present:
                guard = when.expr
                applies[:, j] = features.select(guard.fill_null(False)).to_series().to_numpy()
        return applies

    def _compared(self, features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """The values of ``names`` on each feature's comparison scale (n_rows × len(names))."""
        values = features.select(pl.col(names).cast(pl.Float64)).to_numpy()
        logged = np.array([self.stats_[n].log for n in names])
        return np.where(logged, comparison_scale(values, log=True), values)

    def _z_scores(self, features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """Robust z towards abnormal (n_rows × len(names)); -inf where not applicable."""
        if not names:
            return np.empty((features.height, 0))
        values = self._compared(features, names)
        stats = [self.stats_[n] for n in names]
        center = np.array([s.center for s in stats])
        scale = np.array([s.scale for s in stats])
        signed = (values - center) / scale
        direction = [_rule(n).direction for n in names]
        sign = np.array([-1.0 if d == "low" else 1.0 for d in direction])
        z = signed * sign
        both = np.array([d == "both" for d in direction])
        z[:, both] = np.abs(signed[:, both])
        usable = self._applicability(features, names) & np.isfinite(z)
        return np.where(usable, z, -np.inf)

    def _pushed(
        self,
        features: pl.DataFrame,
        names: Sequence[str],
        z: np.ndarray,
        contributions: np.ndarray,
        contribution_names: Sequence[str] | None,
    ) -> np.ndarray:
        given = list(contribution_names) if contribution_names is not None else self.feature_names_
        contributions = np.asarray(contributions, dtype=np.float64)
        if contributions.shape != (features.height, len(given)):
            raise ValueError(
                f"contributions has shape {contributions.shape}; expected "
                f"({features.height}, {len(given)}) = (rows, contribution_names)"
            )
        index = {n: j for j, n in enumerate(given)}
        pushed = np.zeros(z.shape, dtype=bool)
        for j, name in enumerate(names):
            if name in index:
                c = contributions[:, index[name]]
                pushed[:, j] = (c > 0) & (z[:, j] > 0) & np.isfinite(c)
        return pushed


def _require_numeric(frame: pl.DataFrame, names: Sequence[str], label: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{label} lacks column(s) {missing}")
    wrong = [f"{n} ({frame.schema[n]})" for n in names if not frame.schema[n].is_numeric()]
    if wrong:
        raise ValueError(f"{label}: reason features must be numeric; got {wrong}")
