"""Drift statistics: how far a day's features and scores moved from the reference window.

Two complementary statistics per numeric column, because each misses what the other sees:

* **PSI** (population stability index) over bins cut at the reference's quantiles — sensitive to
  mass moving between regions, insensitive to sample size, the industry's usual alarm
  (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift). Bin shares are epsilon-smoothed so an
  empty bin gives a large but finite value instead of infinity.
* **Two-sample KS** statistic and p-value (``scipy.stats.ks_2samp``) — the largest CDF gap, with
  a significance that accounts for the sample sizes.

Categorical columns (channels, event types) get PSI over category shares plus the **unseen
share**: the fraction of today's values that never occurred in the reference, i.e. inputs a
model trained on the reference has never seen.

``assess`` turns the table into one verdict for the drift sensor: retrain when enough features
drifted at once or the score distribution itself moved.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import polars as pl
from scipy import stats

if TYPE_CHECKING:  # matplotlib is imported only when a plot is drawn
    from matplotlib.figure import Figure

#: Default number of reference-quantile bins for PSI.
PSI_BINS: Final[int] = 10
#: Smoothing added to every bin share before the PSI log ratio.
PSI_EPSILON: Final[float] = 1e-4
#: ``kind`` values of the drift table.
NUMERIC, CATEGORICAL, SCORE = "numeric", "categorical", "score"

DRIFT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "feature": pl.String(),
    "kind": pl.String(),
    "psi": pl.Float64(),
    "ks_stat": pl.Float64(),
    "ks_pvalue": pl.Float64(),
    "ref_mean": pl.Float64(),
    "cur_mean": pl.Float64(),
    "ref_n": pl.Int64(),
    "cur_n": pl.Int64(),
    "unseen_share": pl.Float64(),
}


def psi(
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    bins: int = PSI_BINS,
    epsilon: float = PSI_EPSILON,
) -> float:
    """PSI of ``current`` against ``reference`` over reference-quantile bins.

    Bins are right-closed intervals between the distinct inner quantiles of the reference, so a
    zero-inflated count (90 % zeros) still gets a "0" bin and a "> 0" bin rather than one bin
    swallowing everything.
    """
    ref, cur = _clean(reference, "reference"), _clean(current, "current")
    inner = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="left"), minlength=inner.size + 1)
    cur_counts = np.bincount(np.searchsorted(inner, cur, side="left"), minlength=inner.size + 1)
    return _psi_from_counts(ref_counts, cur_counts, epsilon)


def numeric_drift(
    name: str,
    reference: Sequence[float] | np.ndarray,
    current: Sequence[float] | np.ndarray,
    kind: str = NUMERIC,
    bins: int = PSI_BINS,
) -> dict[str, Any]:
    """One drift-table row (see ``DRIFT_SCHEMA``) for a numeric column."""
    ref, cur = _clean(reference, f"reference {name!r}"), _clean(current, f"current {name!r}")
    ks = stats.ks_2samp(ref, cur)
    return {
        "feature": name,
        "kind": kind,
        "psi": psi(ref, cur, bins=bins),
        "ks_stat": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "ref_mean": float(ref.mean()),
        "cur_mean": float(cur.mean()),
        "ref_n": int(ref.size),
        "cur_n": int(cur.size),
        "unseen_share": None,
    }


def categorical_drift(
    name: str, reference: Iterable[Any], current: Iterable[Any]
) -> dict[str, Any]:
    """One drift-table row for a categorical column: PSI over category shares + unseen share.

    Nulls are a category of their own ("missing channel" appearing is drift too).
    """
    ref = _categories(reference)
    cur = _categories(current)
    if ref.len() == 0 or cur.len() == 0:
        raise ValueError(
            f"categorical column {name!r}: reference and current need at least one "
            f"value each (got {ref.len()} and {cur.len()})"
        )
    joined = (
        ref.value_counts()
        .join(
            cur.value_counts(), on="v", how="full", coalesce=True, nulls_equal=True, suffix="_cur"
        )
        .fill_null(0)
    )
    unseen = ~cur.is_in(ref.unique(), nulls_equal=True)
    return {
        "feature": name,
        "kind": CATEGORICAL,
        "psi": _psi_from_counts(
            joined["count"].to_numpy(), joined["count_cur"].to_numpy(), PSI_EPSILON
        ),
        "ks_stat": None,
        "ks_pvalue": None,
        "ref_mean": None,
        "cur_mean": None,
        "ref_n": int(ref.len()),
        "cur_n": int(cur.len()),
        "unseen_share": float(unseen.sum()) / cur.len(),
    }


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str],
    categorical: Mapping[str, tuple[Iterable[Any], Iterable[Any]]] | None = None,
    bins: int = PSI_BINS,
) -> pl.DataFrame:
    """Drift table (``DRIFT_SCHEMA``) of ``features`` and ``categorical`` columns, most drifted
    first (by PSI, then KS statistic, then unseen share).

    ``categorical`` maps a column name to ``(reference values, current values)`` — typically
    the event-level ``channel`` / ``event_type`` of the two windows, which do not live in the
    user-day feature frames. Include a ``score`` row with ``score_drift``.
    """
    for label, frame in (("reference", reference), ("current", current)):
        missing = [f for f in features if f not in frame.columns]
        if missing:
            raise ValueError(f"{label} frame lacks feature column(s) {missing}")
    rows = [
        numeric_drift(
            f, reference.get_column(f).to_numpy(), current.get_column(f).to_numpy(), bins=bins
        )
        for f in features
    ]
    rows += [categorical_drift(name, ref, cur) for name, (ref, cur) in (categorical or {}).items()]
    return sort_by_drift(
        pl.DataFrame(rows, schema=DRIFT_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=DRIFT_SCHEMA)
    )


def day_feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str],
    history_features: Collection[str] = (),
    history_reference: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """One day's feature drift table, and the features to leave out of its verdict.

    History features (trailing-window features) only compare like with like: the day's values
    against ``history_reference`` — the reference rows that had a full history window. When the
    day itself has no full window (``history_reference`` is None: a warm-up day) or the reference
    holds no full-window row, their rows are still computed against the whole reference, for the
    record, but returned as left out: on the first days of any data they differ for no reason but
    the warm-up, and would otherwise trigger a retraining on every fresh history.
    """
    history = [f for f in features if f in history_features]
    full_window = (
        history_reference
        if history_reference is not None and history_reference.height > 0
        else None
    )
    plain = [f for f in features if f not in history] if full_window is not None else list(features)
    table = feature_drift(reference, current, plain)
    if full_window is not None and history:
        with_history = feature_drift(full_window, current, history)
        table = sort_by_drift(pl.concat([table, with_history]))
    return table, (() if full_window is not None else tuple(history))


def unseen_categories(
    seen: Mapping[str, Sequence[str]], current: Mapping[str, Mapping[str | None, int]]
) -> pl.DataFrame:
    """Drift rows (``DRIFT_SCHEMA``) of the categorical columns: the unseen share only, from the
    day's count of events per value (``current``: column -> value -> events).

    For when only *which* categories the reference saw is known, not how often (a model bundle
    stores the set): a PSI of shares against that list would compare the day's mix with a uniform
    one and flag every calm day, so PSI stays null. Nulls are left out of the share because the
    reference set holds no null either.
    """
    rows = []
    for column, counts in current.items():
        known = set(seen.get(column, []))
        present = sum(n for v, n in counts.items() if v is not None)
        if present:
            unseen = sum(n for v, n in counts.items() if v is not None and v not in known)
            rows.append(
                {
                    "feature": column,
                    "kind": CATEGORICAL,
                    "ref_n": len(known),
                    "cur_n": present,
                    "unseen_share": unseen / present,
                }
            )
    return pl.DataFrame(rows, schema=DRIFT_SCHEMA)


def score_drift(
    reference_scores: Sequence[float] | np.ndarray,
    current_scores: Sequence[float] | np.ndarray,
    bins: int = PSI_BINS,
) -> pl.DataFrame:
    """The one-row drift table of the anomaly score distribution (``kind == "score"``)."""
    return pl.DataFrame(
        [numeric_drift("score", reference_scores, current_scores, kind=SCORE, bins=bins)],
        schema=DRIFT_SCHEMA,
        orient="row",
    )


def sort_by_drift(table: pl.DataFrame) -> pl.DataFrame:
    """Most drifted first: PSI, then KS statistic, then unseen share (nulls last)."""
    return table.sort(["psi", "ks_stat", "unseen_share"], descending=True, nulls_last=True)


@dataclass(frozen=True)
class DriftThresholds:
    """When a row counts as drifted, and how many drifted features make the day drifted."""

    psi: float = 0.25
    ks: float = 0.2
    unseen_share: float = 0.05
    min_drifted_features: int = 3

    def __post_init__(self) -> None:
        for name in ("psi", "ks", "unseen_share"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DriftThresholds.{name} must be > 0, got {getattr(self, name)}")
        if self.min_drifted_features < 1:
            raise ValueError(
                "DriftThresholds.min_drifted_features must be >= 1, got "
                f"{self.min_drifted_features}"
            )


@dataclass(frozen=True)
class DriftVerdict:
    """The sensor's answer: retrain or not, why, and which features moved."""

    drifted: bool
    reason: str
    drifted_features: list[str] = field(default_factory=list)


def _over_threshold(thresholds: DriftThresholds, left_out: Collection[str]) -> pl.Expr:
    """Per row: PSI or KS statistic or unseen share over its threshold, unless left out."""
    return (
        (pl.col("psi") >= thresholds.psi).fill_null(False)
        | (pl.col("ks_stat") >= thresholds.ks).fill_null(False)
        | (pl.col("unseen_share") >= thresholds.unseen_share).fill_null(False)
    ) & ~pl.col("feature").is_in(list(left_out))


def drifted_rows(
    table: pl.DataFrame, thresholds: DriftThresholds, left_out: Collection[str] = ()
) -> pl.DataFrame:
    """Rows of a drift table over a threshold: PSI or KS statistic, or the unseen share.

    ``left_out`` names features whose row never counts (e.g. history features on a warm-up day).
    """
    return table.filter(_over_threshold(thresholds, left_out))


def flag_drifted(
    table: pl.DataFrame, thresholds: DriftThresholds, left_out: Collection[str] = ()
) -> pl.DataFrame:
    """The table with a boolean ``drifted`` column: whether *that row* is over a threshold.

    Per feature, not the day's verdict: a feature with PSI 0.006 is not drifted on a day that
    drifted because of other features.
    """
    return table.with_columns(drifted=_over_threshold(thresholds, left_out))


def assess(
    table: pl.DataFrame,
    thresholds: DriftThresholds = DriftThresholds(),
    left_out: Collection[str] = (),
) -> DriftVerdict:
    """Drifted when ``min_drifted_features`` features drifted or the score row drifted.

    A moved score distribution is enough on its own: it means the model now flags a different
    share of users, whatever the cause. Single-feature wobbles are not, because one noisy
    feature on one day is common and retraining is expensive. Features in ``left_out`` are
    reported but neither count nor are counted (see ``flag_drifted``).
    """
    missing = [c for c in DRIFT_SCHEMA if c not in table.columns]
    if missing:
        raise ValueError(f"drift table lacks column(s) {missing}; build it with feature_drift")
    hits = sort_by_drift(drifted_rows(table, thresholds, left_out))
    features = hits.filter(pl.col("kind") != SCORE)
    score_hit = hits.filter(pl.col("kind") == SCORE)
    features_only = table.filter(pl.col("kind") != SCORE)
    skipped = features_only.filter(pl.col("feature").is_in(list(left_out))).height
    n_features = features_only.height - skipped
    names = features.get_column("feature").to_list()
    detail = ", ".join(_describe(row, thresholds) for row in features.head(5).iter_rows(named=True))
    parts: list[str] = []
    if score_hit.height:
        score_row = score_hit.row(0, named=True)
        parts.append(f"score distribution drifted ({_describe(score_row, thresholds)})")
    enough = len(names) >= thresholds.min_drifted_features
    count = (
        f"{len(names)} of {n_features} feature(s) drifted "
        f"({'≥' if enough else '<'} {thresholds.min_drifted_features})"
    )
    parts.append(count + (f": {detail}" if detail else ""))
    if skipped:
        parts.append(f"{skipped} history feature(s) left out (warm-up: no full history window)")
    drifted = enough or bool(score_hit.height)
    return DriftVerdict(
        drifted=drifted,
        reason=("drift: " if drifted else "no drift: ") + "; ".join(parts),
        drifted_features=names,
    )


def plot_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    table: pl.DataFrame,
    top_n: int = 4,
    bins: int = 30,
) -> bytes:
    """PNG bytes of ``drift_figure``: reference vs current histograms of the most drifted."""
    buffer = io.BytesIO()
    drift_figure(reference, current, table, top_n, bins).savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def drift_figure(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    table: pl.DataFrame,
    top_n: int = 4,
    bins: int = 30,
) -> Figure:
    """One panel per numeric column among the ``top_n`` most drifted (``sort_by_drift`` order),
    titled with its name, PSI and KS.

    Uses matplotlib's object API on an Agg canvas (imported here, not at module load), so it
    works headless and never touches pyplot's global state inside a long-lived process.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    numeric = sort_by_drift(table).filter(pl.col("kind") == NUMERIC)
    names = [
        n
        for n in numeric.get_column("feature").to_list()
        if n in reference.columns and n in current.columns
    ][:top_n]
    if not names:
        raise ValueError("no numeric drift rows whose column is in both frames; nothing to plot")
    figure = Figure(figsize=(4.0 * len(names), 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    for ax, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        ref = _clean(reference.get_column(name).to_numpy(), name)
        cur = _clean(current.get_column(name).to_numpy(), name)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=bins)
        ax.hist(ref, bins=edges, density=True, alpha=0.5, label="reference")
        ax.hist(cur, bins=edges, density=True, alpha=0.5, label="current")
        row = numeric.filter(pl.col("feature") == name).row(0, named=True)
        ax.set_title(f"{name}\nPSI {row['psi']:.2f} · KS {row['ks_stat']:.2f}", fontsize=9)
        ax.legend(fontsize=7)
    return figure


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float) -> float:
    ref_share = ref_counts / ref_counts.sum()
    cur_share = cur_counts / cur_counts.sum()
    ref_share = (ref_share + epsilon) / (1.0 + epsilon * ref_share.size)
    cur_share = (cur_share + epsilon) / (1.0 + epsilon * cur_share.size)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def _clean(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    """Finite float values; nulls/NaN dropped. Empty after dropping is an error."""
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"{name} has no finite values; drift needs at least one on each side")
    return array


def _categories(values: Iterable[Any]) -> pl.Series:
    """Category values as strings (so 3 and "3" are one category), nulls kept."""
    series = values if isinstance(values, pl.Series) else pl.Series(list(values))
    return series.rename("v").cast(pl.String)


def _describe(row: Mapping[str, Any], thresholds: DriftThresholds) -> str:
    bits = []
    if row["psi"] is not None and row["psi"] >= thresholds.psi:
        bits.append(f"PSI {row['psi']:.2f}")
    if row["ks_stat"] is not None and row["ks_stat"] >= thresholds.ks:
        bits.append(f"KS {row['ks_stat']:.2f}")
    if row["unseen_share"] is not None and row["unseen_share"] >= thresholds.unseen_share:
        bits.append(f"unseen {row['unseen_share']:.0%}")
    return f"{row['feature']} ({', '.join(bits)})" if row["kind"] != SCORE else ", ".join(bits)
