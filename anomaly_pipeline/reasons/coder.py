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
from typing import Any, Final, Self, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from anomaly_pipeline.features.catalogue import BY_NAME, Direction, Feature, When
from anomaly_pipeline.reasons.statistics import FeatureStats, comparison_scale
from anomaly_pipeline.reasons.templates import ReasonTemplate, template_for

CODER_FORMAT: Final[int] = 1

_T = TypeVar("_T")


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
    machine codes and full ``Reason`` records alongside in the same order.

    Stored flat, every row's reasons one after the other (row ``i``'s are entries
    ``offsets[i]:offsets[i + 1]``), because scoring turns a batch of 100,000 rows into two
    ``List(String)`` columns: from flat values and offsets that is one Arrow array each
    (``text_column``, ``code_column``), where nested Python lists cost polars a conversion
    per row.
    """

    offsets: list[int]
    codes_flat: list[str]
    texts_flat: list[str]
    features_flat: list[str]
    strengths_flat: list[float]

    @classmethod
    def empty(cls, n_rows: int) -> Explanation:
        """``n_rows`` rows without any reason."""
        return cls([0] * (n_rows + 1), [], [], [], [])

    @property
    def reasons(self) -> list[list[Reason]]:
        records = [
            Reason(*fields)
            for fields in zip(
                self.codes_flat,
                self.texts_flat,
                self.features_flat,
                self.strengths_flat,
                strict=True,
            )
        ]
        return self._per_row(records)

    @property
    def texts(self) -> list[list[str]]:
        return self._per_row(self.texts_flat)

    @property
    def codes(self) -> list[list[str]]:
        return self._per_row(self.codes_flat)

    def text_column(self) -> pl.Series:
        """The texts as one ``List(String)`` series, a row per explained row."""
        return self._list_column(self.texts_flat)

    def code_column(self) -> pl.Series:
        """The codes as one ``List(String)`` series, a row per explained row."""
        return self._list_column(self.codes_flat)

    def __getitem__(self, index: int) -> list[str]:  # type: ignore[override]
        row = range(len(self))[index]  # negative indices as a list's, IndexError past the end
        return self.texts_flat[self.offsets[row] : self.offsets[row + 1]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __iter__(self) -> Iterator[list[str]]:
        return (self[i] for i in range(len(self)))

    def _per_row(self, flat: list[_T]) -> list[list[_T]]:
        return [flat[start:end] for start, end in zip(self.offsets, self.offsets[1:], strict=False)]

    def _list_column(self, flat: list[str]) -> pl.Series:
        values = pa.array(flat, type=pa.large_string())
        lists = pa.LargeListArray.from_arrays(pa.array(self.offsets, type=pa.int64()), values)
        return pl.Series(lists).cast(pl.List(pl.String))


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
        strength = z  # z is not needed past the candidates: reuse its matrix in place
        np.copyto(strength, -np.inf, where=~candidates)
        templates = [template_for(n) for n in names]
        # one entry per fact (a template's feature tuple), member columns by position
        grouped: dict[tuple[str, ...], list[int]] = {}
        for j, template in enumerate(templates):
            grouped.setdefault(template.features, []).append(j)
        members = list(grouped.values())
        if not members:  # none of the fitted features is in the frame: nothing to say
            return Explanation.empty(features.height)
        unique = [templates[m[0]] for m in members]
        # per template: strongest member feature and its strength. Ranked on strengths rounded
        # to float32, so equal facts (one purchase: its amount is the day's spend) rank in
        # feature order rather than by the last bit of a matrix product, which BLAS rounds by
        # the batch's shape: a row's reasons do not depend on the rows scored with it.
        ranked = strength.astype(np.float32)
        member_strength = _columns([strength[:, m].max(axis=1) for m in members])
        member_pick = _columns([np.asarray(m)[ranked[:, m].argmax(axis=1)] for m in members])
        member_rank = _columns([ranked[:, m].max(axis=1) for m in members])
        # the reasons, flat: each row's picked templates (a finite strength) in rank order
        order, picked = _strongest(member_rank, top_k)
        row_of = np.nonzero(picked)[0]
        template_of = order[picked]
        offsets = np.zeros(features.height + 1, dtype=np.int64)
        np.cumsum(picked.sum(axis=1), out=offsets[1:])
        trigger_of = member_pick[row_of, template_of]
        codes, texts = self._render(features, row_of, template_of, trigger_of, names, unique)
        triggers = np.asarray(names, dtype=object)[trigger_of].tolist()
        strengths = member_strength[row_of, template_of].tolist()
        return Explanation(offsets.tolist(), codes, texts, triggers, strengths)

    def _render(
        self,
        features: pl.DataFrame,
        row_of: np.ndarray,
        template_of: np.ndarray,
        trigger_of: np.ndarray,
        names: Sequence[str],
        templates: list[ReasonTemplate],
    ) -> tuple[list[str], list[str]]:
        """Render the flat reasons: reason ``e`` is ``templates[template_of[e]]`` phrased by
        feature ``names[trigger_of[e]]`` with row ``row_of[e]``'s values; returns the codes and
        texts in that order.

        A template reads only its ``reads`` columns, those that are ``int`` / ``float`` (``bool``
        too) and not null. So the reasons are rendered a (template, trigger) group at a time, and
        in a group once per distinct combination of the values read: counts are small integers,
        so most reasons repeat a text already rendered, and no row goes through Python whole
        (rendering row by row from whole rows took 11.5 s of a 10 M-event day's scoring).
        """
        codes = np.empty(row_of.size, dtype=object)
        texts = np.empty(row_of.size, dtype=object)
        numbers = {c for c, t in features.schema.items() if _python_number(t)}
        group = template_of.astype(np.int64) * len(names) + trigger_of
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.diff(group[order], prepend=-1))
        for entries in np.split(order, starts[1:]) if order.size else ():
            template = templates[template_of[entries[0]]]
            trigger = names[trigger_of[entries[0]]]
            reads = [c for c in template.reads if c in numbers]
            distinct = (
                features.select(reads)[row_of[entries]]
                .with_columns(_entry=pl.Series(entries))
                .group_by(reads)
                .agg("_entry")
            )
            rendered = [
                template.render(
                    {c: v for c, v in row.items() if v is not None}, trigger, self.stats_
                )
                for row in distinct.select(reads).iter_rows(named=True)
            ]
            repeats = distinct.get_column("_entry").list.len().to_numpy()
            targets = distinct.get_column("_entry").explode().to_numpy()
            codes[targets] = np.repeat(np.array([c for c, _ in rendered], dtype=object), repeats)
            texts[targets] = np.repeat(np.array([t for _, t in rendered], dtype=object), repeats)
        return codes.tolist(), texts.tolist()

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
        applies = np.ones((features.height, len(names)), dtype=bool, order="F")
        present = set(features.columns)
        for j, name in enumerate(names):
            when = _rule(name).applies
            if when is not None and when.column in present:
                guard = when.expr
                applies[:, j] = features.select(guard.fill_null(False)).to_series().to_numpy()
        return applies

    def _compared(self, features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """The values of ``names`` on each feature's comparison scale (n_rows × len(names), a
        new column-major array: each feature's column is contiguous, to work on in place)."""
        values = features.select(pl.col(names).cast(pl.Float64)).to_numpy(
            order="fortran", writable=True
        )
        for j, name in enumerate(names):
            if self.stats_[name].log:
                values[:, j] = comparison_scale(values[:, j], log=True)
        return values

    def _z_scores(self, features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """Robust z towards abnormal (n_rows × len(names), column-major); -inf where not
        applicable. Computed a column at a time in place (a batch is rows × ~40 values, and
        every whole-matrix temporary costs as much again)."""
        if not names:
            return np.empty((features.height, 0))
        z = self._compared(features, names)
        for j, name in enumerate(names):
            column, stats = z[:, j], self.stats_[name]
            column -= stats.center
            column /= stats.scale
            direction = _rule(name).direction
            if direction == "low":
                np.negative(column, out=column)
            elif direction == "both":
                np.abs(column, out=column)
        usable = self._applicability(features, names) & np.isfinite(z)
        np.copyto(z, -np.inf, where=~usable)
        return z

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


def _columns(columns: list[np.ndarray]) -> np.ndarray:
    """The 1-D ``columns`` side by side, column-major (each copied in one contiguous write)."""
    out = np.empty((columns[0].size, len(columns)), dtype=columns[0].dtype, order="F")
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


def _strongest(rank: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``k`` highest ranks, highest first and ties in column order
    (a stable descending sort's first ``k``), and whether each is above -inf (a reason).

    ``k`` passes of ``argmax`` (the first maximum) rather than a sort of every column."""
    rank = rank.copy()
    rows = np.arange(rank.shape[0])
    k = min(k, rank.shape[1])
    columns = np.empty((rank.shape[0], k), dtype=np.intp)
    found = np.empty((rank.shape[0], k), dtype=bool)
    for i in range(k):
        columns[:, i] = best = rank.argmax(axis=1)
        found[:, i] = rank[rows, best] > -np.inf
        rank[rows, best] = -np.inf
    return columns, found


def _python_number(dtype: pl.DataType) -> bool:
    """Whether a column's values reach Python as ``int`` / ``float`` (``bool`` is an ``int``):
    integers, floats and booleans; decimals come as ``Decimal``, the rest as other types."""
    return dtype.is_integer() or dtype.is_float() or dtype == pl.Boolean


def _require_numeric(frame: pl.DataFrame, names: Sequence[str], label: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{label} lacks column(s) {missing}")
    wrong = [f"{n} ({frame.schema[n]})" for n in names if not frame.schema[n].is_numeric()]
    if wrong:
        raise ValueError(f"{label}: reason features must be numeric; got {wrong}")
