"""Reason codes: the few strongest, human-readable reasons why a user-day scored high.

An analyst deciding on a review queue needs "47.0 views/min, 6× the population median", not
"feature 45 contributed 0.31". ``ReasonCoder`` learns robust population statistics per feature
(median, quartiles, tail quantiles) on the training window and then, for each scored row:

1. gives every feature a *strength*: the detector's per-feature contribution when available, else
   a robust z-score ``(x - median) / scale`` signed so that positive means "towards abnormal"
   (many views is abnormal, a tiny interval CV is abnormal, ...);
2. keeps only features that are applicable (an interval CV needs enough events, a 7-day ratio
   needs history, a signup-to-purchase delay needs a purchase) and that lie on the abnormal side;
3. groups features that describe one fact (``new_device`` + ``new_ip_network``; ``n_events`` +
   ``events_vs_7d_median``; a sharing count today + over the window) into one reason, phrased by
   its strongest member;
4. renders the ``top_k`` strongest as text stating the value and the comparison that makes it
   unusual, with a stable machine code (``high_view_rate``) alongside.

Every column of the feature contract has a template; an unknown column gets a generic one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, Self

import numpy as np
import polars as pl

from anomaly_pipeline.feature_contract import NO_PURCHASE_DELAY_S

Direction = Literal["high", "low", "both"]

#: A coefficient of variation over fewer events is noise, not machine regularity.
MIN_EVENTS_FOR_REGULARITY: Final[int] = 5
CODER_FORMAT: Final[int] = 1
_NORMAL_IQR: Final[float] = 1.349  # IQR of a standard normal: IQR / 1.349 estimates sigma


# -- population statistics ------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureStats:
    """Summary of one feature over the applicable training rows.

    ``median`` and the quantiles are in the feature's own units (for the texts); ``center`` and
    ``scale`` are the median and a sigma-equivalent spread on the comparison scale (``log1p``
    for skewed features, see ``FeatureRule``), from which the z-scores are taken.
    """

    median: float
    q25: float
    q75: float
    q99: float
    center: float
    scale: float
    log: bool
    n: int

    @classmethod
    def of(cls, values: np.ndarray, log: bool) -> FeatureStats:
        q25, median, q75, q99 = np.quantile(values, [0.25, 0.50, 0.75, 0.99])
        compared = _comparison_scale(values, log)
        return cls(float(median), float(q25), float(q75), float(q99),
                   float(np.median(compared)), _robust_scale(compared), log, int(values.size))


def _comparison_scale(values: np.ndarray, log: bool) -> np.ndarray:
    """``log1p`` of the (non-negative by contract) values, or the values themselves."""
    return np.log1p(np.maximum(values, 0.0)) if log else values


def _robust_scale(values: np.ndarray) -> float:
    """A sigma-equivalent spread that stays positive for zero-inflated counts.

    The IQR is robust but zero for a count that is 0 for most users (reviews, refunds, a 0/1
    flag); successively wider symmetric quantile ranges, each divided by its normal-distribution
    width, give such features a data-driven scale instead of an infinite z-score.
    """
    q01, q10, q25, q75, q90, q99 = np.quantile(values, [0.01, 0.10, 0.25, 0.75, 0.90, 0.99])
    for width, normal_width in ((q75 - q25, _NORMAL_IQR), (q90 - q10, 2.563),
                                (q99 - q01, 4.653)):
        if width > 0:
            return float(width / normal_width)
    std = float(values.std())
    # a (numerically) constant population: any deviation is new; one unit (one e-fold on the
    # log scale) per sigma keeps the z-scores finite and ordered by the size of the deviation
    return std if std > 1e-9 * max(1.0, abs(float(np.median(values)))) else 1.0


# -- how each feature is judged ----------------------------------------------------------------
@dataclass(frozen=True)
class FeatureRule:
    """Which side of the population is abnormal, on which rows the feature means anything, and
    whether it is compared on a log scale.

    Counts, amounts, durations and rates are skewed and multiplicative — 10× the median is as
    telling whether the median is 3 or 300, and 42 s against a median of an hour must score far
    from the median although both are "small" — so they are compared as ``log1p(x)``. Shares,
    flags, day counts and ratings are bounded and compared as they are.
    """

    direction: Direction
    applies: pl.Expr | None = None
    log: bool = True


_HAS_HISTORY = pl.col("history_days") > 0
_RULES: Final[dict[str, FeatureRule]] = {
    **{name: FeatureRule("high") for name in (
        "n_events", "n_sessions", "n_views", "n_clicks", "n_searches", "n_favs", "n_carts",
        "n_purchases", "n_reviews", "n_refunds", "n_coupons", "n_logins", "n_signups",
        "purchase_amount_sum", "distinct_items", "distinct_categories",
        "distinct_shops", "distinct_devices", "distinct_ips", "distinct_ip_networks",
        "users_per_device_day", "users_per_ip_network_day", "users_per_device_window",
        "users_per_ip_network_window")},
    "cart_or_buy_per_view": FeatureRule("high", pl.col("n_views") > 0),
    "cart_to_purchase_rate": FeatureRule("high", pl.col("n_carts") > 0),
    "views_per_session": FeatureRule("high", pl.col("n_sessions") > 0),
    "max_views_per_session": FeatureRule("high", pl.col("n_sessions") > 0),
    "session_duration_mean_s": FeatureRule("high", pl.col("n_sessions") > 0),
    "views_per_active_minute": FeatureRule("high", pl.col("n_views") > 0),
    "dwell_mean_s": FeatureRule("low", pl.col("n_events") >= 2),
    "purchase_amount_mean": FeatureRule("high", pl.col("n_purchases") > 0),
    "rating_mean": FeatureRule("both", pl.col("n_reviews") > 0, log=False),
    "extreme_rating_share": FeatureRule("high", pl.col("n_reviews") > 0, log=False),
    "interval_mean_s": FeatureRule("low", pl.col("n_events") >= 2),
    "interval_min_s": FeatureRule("low", pl.col("n_events") >= 2),
    "interval_std_s": FeatureRule("low", pl.col("n_events") >= MIN_EVENTS_FOR_REGULARITY),
    "interval_cv": FeatureRule("low", pl.col("n_events") >= MIN_EVENTS_FOR_REGULARITY),
    "first_purchase_delay_s": FeatureRule(
        "low", pl.col("first_purchase_delay_s") < NO_PURCHASE_DELAY_S),
    "history_days": FeatureRule("low", log=False),
    "events_vs_7d_median": FeatureRule("high", _HAS_HISTORY),
    "views_vs_7d_median": FeatureRule("high", _HAS_HISTORY),
    "purchases_vs_7d_median": FeatureRule("high", _HAS_HISTORY),
    # on a user's first active day every device is new: only established accounts count
    "new_device": FeatureRule("high", _HAS_HISTORY, log=False),
    "new_ip_network": FeatureRule("high", _HAS_HISTORY, log=False),
    "night_share": FeatureRule("high", log=False),
}
_GENERIC_RULE: Final = FeatureRule("both", log=False)


# -- text helpers ----------------------------------------------------------------------------
def _int(value: float) -> str:
    return f"{value:,.0f}"


def _plural(value: float, noun: str, plural: str | None = None) -> str:
    return f"{_int(value)} {noun if round(value) == 1 else plural or noun + 's'}"


def _ratio(value: float) -> str:
    """``6×``, ``2.5×``, ``12×``: one decimal below 10, trailing ``.0`` dropped."""
    text = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
    return f"{text}×"


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _vs_population(value: float, stats: FeatureStats, fmt: Callable[[float], str]) -> str:
    """The comparison that makes a high value unusual: a multiple of the population median, or
    the median itself when it is zero (a multiple of zero says nothing)."""
    if stats.median > 0:
        return f"{_ratio(value / stats.median)} the population median"
    return f"population median {fmt(stats.median)}"


# -- reason templates ------------------------------------------------------------------------
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


Row = Mapping[str, float]
Stats = Mapping[str, FeatureStats]
#: (row values, the strongest member feature, population stats) -> (code, text)
Renderer = Callable[[Row, str, Stats], tuple[str, str]]


@dataclass(frozen=True)
class ReasonTemplate:
    """A reason built from one or more features describing the same fact."""

    features: tuple[str, ...]
    render: Renderer


def _high(feature: str, code: str, describe: Callable[[float], str],
          fmt: Callable[[float], str] = _int) -> ReasonTemplate:
    """A "too much of X" reason: ``<value phrase>, <k>× the population median``."""
    def render(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
        value = row[feature]
        return code, f"{describe(value)}, {_vs_population(value, stats[feature], fmt)}"
    return ReasonTemplate((feature,), render)


def _low(feature: str, code: str, describe: Callable[[float], str],
         fmt: Callable[[float], str]) -> ReasonTemplate:
    """A "suspiciously little X" reason: ``<value phrase> (population median <m>)``."""
    def render(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
        return code, f"{describe(row[feature])} (population median {fmt(stats[feature].median)})"
    return ReasonTemplate((feature,), render)


def _volume(count: str, history_ratio: str, code: str, noun: str) -> ReasonTemplate:
    """Today's count against the population, or against the user's own 7-day median when that
    is what makes it unusual (the ratio feature is the stronger member)."""
    def render(row: Row, trigger: str, stats: Stats) -> tuple[str, str]:
        if trigger == history_ratio:
            today = "" if row.get(count) is None else f" ({_int(row[count])} today)"
            return code, f"{_ratio(row[history_ratio])} the user's 7-day median {noun}s{today}"
        value = row[count]  # the trigger itself: present in the row
        return code, (f"{_plural(value, noun)} today, "
                      f"{_vs_population(value, stats[count], _int)}")
    return ReasonTemplate((count, history_ratio), render)


def _shared(day: str, window: str, code: str, thing: str) -> ReasonTemplate:
    """Sharing today, or over the trailing window when that is the unusual part."""
    def render(row: Row, trigger: str, _stats: Stats) -> tuple[str, str]:
        if trigger == day:
            return code, f"{thing} shared by {_int(row[day])} users today"
        today = "" if row.get(day) is None else f" ({_int(row[day])} today)"
        return code, f"{thing} shared by {_int(row[window])} users over the trailing window{today}"
    return ReasonTemplate((day, window), render)


def _new_access(row: Row, _trigger: str, _stats: Stats) -> tuple[str, str]:
    device, network = row.get("new_device", 0.0) >= 1, row.get("new_ip_network", 0.0) >= 1
    if device and network:
        return "new_device_and_ip_network", "new device and new IP network, first seen today"
    if device:
        return "new_device", "new device, first seen today"
    return "new_ip_network", "new IP network, first seen today"


def _history(row: Row, _trigger: str, _stats: Stats) -> tuple[str, str]:
    days = row["history_days"]
    if days <= 0:
        return "no_recent_history", "no activity in the previous 7 days"
    return "little_recent_history", f"active on only {_plural(days, 'day')} of the previous 7"


def _rating(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    reviews = row.get("n_reviews")
    over = "" if reviews is None else f" over {_plural(reviews, 'review')}"
    return "unusual_rating", (f"average rating {row['rating_mean']:.1f} stars{over} "
                              f"(population median {stats['rating_mean'].median:.1f})")


def _extreme(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    reviews = row.get("n_reviews")
    of = "" if reviews is None else f" of {_plural(reviews, 'review')}"
    return "extreme_ratings", (f"{_pct(row['extreme_rating_share'])}{of} rated 1 or 5 stars "
                               f"(population median "
                               f"{_pct(stats['extreme_rating_share'].median)})")


def _per_view(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    per_ten = row["cart_or_buy_per_view"] * 10
    median = stats["cart_or_buy_per_view"].median * 10
    return "high_purchase_per_view", (f"{per_ten:.0f} carts or purchases per 10 views "
                                      f"(population median {median:.1f})")


def _regularity(row: Row, trigger: str, stats: Stats) -> tuple[str, str]:
    """CV (relative) and std (absolute) of the gaps are one fact: clicks on a timer."""
    if trigger == "interval_cv":
        text = (f"machine-regular clicks: interval CV {row['interval_cv']:.2f} "
                f"(population median {stats['interval_cv'].median:.2f})")
    else:
        text = (f"machine-regular clicks: gaps vary by {_duration(row['interval_std_s'])} "
                f"(population median {_duration(stats['interval_std_s'].median)})")
    return "machine_regular_intervals", text


def _signup_delay(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    return "purchase_right_after_signup", (
        f"purchase {_duration(row['first_purchase_delay_s'])} after signup (population median "
        f"{_duration(stats['first_purchase_delay_s'].median)})")


_TEMPLATES: Final[tuple[ReasonTemplate, ...]] = (
    _volume("n_events", "events_vs_7d_median", "high_event_volume", "event"),
    _volume("n_views", "views_vs_7d_median", "high_view_count", "view"),
    _volume("n_purchases", "purchases_vs_7d_median", "high_purchase_count", "purchase"),
    _high("n_sessions", "many_sessions", lambda v: f"{_plural(v, 'session')} today"),
    _high("n_clicks", "high_click_count", lambda v: _plural(v, "click")),
    _high("n_searches", "high_search_count", lambda v: _plural(v, "search", "searches")),
    _high("n_favs", "high_fav_count", lambda v: f"{_plural(v, 'item')} favourited"),
    _high("n_carts", "high_cart_count", lambda v: _plural(v, "add-to-cart")),
    _high("n_reviews", "many_reviews", lambda v: f"{_plural(v, 'review')} written today"),
    _high("n_refunds", "many_refunds", lambda v: f"{_plural(v, 'refund')} requested"),
    _high("n_coupons", "many_coupons", lambda v: f"{_plural(v, 'coupon')} used"),
    _high("n_logins", "many_logins", lambda v: f"{_plural(v, 'login')} today"),
    _high("n_signups", "repeated_signups", lambda v: f"{_plural(v, 'signup')} today"),
    ReasonTemplate(("cart_or_buy_per_view",), _per_view),
    _high("cart_to_purchase_rate", "high_cart_to_purchase",
          lambda v: f"{_pct(v)} of carts bought", _pct),
    _high("views_per_session", "high_views_per_session",
          lambda v: f"{v:.0f} views per session"),
    _high("max_views_per_session", "long_view_burst",
          lambda v: f"{_int(v)} views in a single session"),
    _low("dwell_mean_s", "short_dwell",
         lambda v: f"{_duration(v)} average dwell per event", _duration),
    _high("session_duration_mean_s", "long_sessions",
          lambda v: f"sessions last {_duration(v)} on average", _duration),
    _high("views_per_active_minute", "high_view_rate", lambda v: f"{v:.1f} views/min",
          lambda v: f"{v:.1f}"),
    _high("purchase_amount_sum", "high_spend", lambda v: f"spent {_money(v)} today", _money),
    _high("purchase_amount_mean", "high_order_value", lambda v: f"average order {_money(v)}",
          _money),
    ReasonTemplate(("rating_mean",), _rating),
    ReasonTemplate(("extreme_rating_share",), _extreme),
    _low("interval_mean_s", "rapid_events",
         lambda v: f"an event every {_duration(v)} on average", _duration),
    ReasonTemplate(("interval_cv", "interval_std_s"), _regularity),
    _low("interval_min_s", "rapid_fire_events",
         lambda v: f"shortest gap between events {_duration(v)}", _duration),
    _high("night_share", "night_activity",
          lambda v: f"{_pct(v)} of activity at night (00–05 source local time)", _pct),
    ReasonTemplate(("first_purchase_delay_s",), _signup_delay),
    _high("distinct_items", "many_distinct_items",
          lambda v: f"{_int(v)} distinct items viewed"),
    _high("distinct_categories", "many_distinct_categories",
          lambda v: f"{_int(v)} distinct categories browsed"),
    _high("distinct_shops", "many_distinct_shops",
          lambda v: f"{_int(v)} distinct shops visited"),
    _high("distinct_devices", "many_devices", lambda v: f"{_plural(v, 'device')} used today"),
    _high("distinct_ips", "many_ips", lambda v: f"{_plural(v, 'IP address', 'IP addresses')} "
                                                "today"),
    _high("distinct_ip_networks", "many_ip_networks",
          lambda v: f"{_plural(v, 'IP network')} today"),
    _shared("users_per_device_day", "users_per_device_window", "shared_device", "device"),
    _shared("users_per_ip_network_day", "users_per_ip_network_window", "shared_ip_network",
            "IP network"),
    ReasonTemplate(("history_days",), _history),
    ReasonTemplate(("new_device", "new_ip_network"), _new_access),
)
#: Every feature with its own wording (the feature contract's columns).
TEMPLATED_FEATURES: Final[frozenset[str]] = frozenset(
    f for template in _TEMPLATES for f in template.features)


def _generic(feature: str) -> ReasonTemplate:
    """Fallback for a column without a template (a feature added after this module)."""
    def render(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
        value, median = row[feature], stats[feature].median
        side = "high" if value > median else "low"
        return f"unusual_{feature}", (f"unusually {side} {feature}: {value:.3g} "
                                      f"(population median {median:.3g})")
    return ReasonTemplate((feature,), render)


# -- the coder -------------------------------------------------------------------------------
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
        feature applies (see ``FeatureRule``); a feature that never applies gets no statistics
        and never becomes a reason.
        """
        names = list(feature_names) if feature_names is not None else [
            c for c, t in features.schema.items() if t.is_numeric()]
        _require_numeric(features, names, "features")
        if features.is_empty():
            raise ValueError("features is empty; the coder needs a training window")
        applies = self._applicability(features, names)
        self.stats_ = {}
        for j, name in enumerate(names):
            values = features.get_column(name).cast(pl.Float64).to_numpy()
            values = values[applies[:, j] & np.isfinite(values)]
            if values.size:
                self.stats_[name] = FeatureStats.of(values, _RULES.get(name, _GENERIC_RULE).log)
        self.feature_names_ = names
        return self

    def explain(self, features: pl.DataFrame, contributions: np.ndarray | None = None,
                top_k: int = 3, contribution_names: Sequence[str] | None = None
                ) -> Explanation:
        """For each row, up to ``top_k`` reasons, strongest first (texts; ``.codes`` alongside).

        With ``contributions`` (n_rows × n_features, columns ``contribution_names``, default the
        fitted feature order) reasons are ranked by the detector's contribution; features the
        detector did not push (contribution <= 0) or that sit on the normal side of the
        population median are skipped. Without, ranking uses the robust z-score and keeps only
        features at least ``min_z`` towards abnormal.
        """
        if not self.stats_:
            raise RuntimeError("ReasonCoder is not fitted; call fit(training features) first")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        names = [n for n in self.feature_names_ if n in self.stats_ and n in features.columns]
        _require_numeric(features, names, "features")
        z = self._z_scores(features, names)
        if contributions is None:
            strength = np.where(z >= self.min_z, z, -np.inf)
        else:
            strength = self._contribution_strength(features, names, z, contributions,
                                                   contribution_names)
        templates = [_template_for(n) for n in names]
        # one entry per fact (a template's feature tuple), member columns by position
        grouped: dict[tuple[str, ...], list[int]] = {}
        for j, template in enumerate(templates):
            grouped.setdefault(template.features, []).append(j)
        members = list(grouped.values())
        if not members:  # none of the fitted features is in the frame: nothing to say
            return Explanation([[] for _ in range(features.height)])
        unique = [templates[m[0]] for m in members]
        # per template: strongest member feature and its strength
        member_strength = np.stack([strength[:, m].max(axis=1) for m in members], axis=1)
        member_pick = [np.asarray(m)[strength[:, m].argmax(axis=1)] for m in members]
        order = np.argsort(-member_strength, axis=1, kind="stable")[:, :top_k]
        result: list[list[Reason]] = []
        columns = features.columns
        for i, row_values in enumerate(features.iter_rows()):
            picked = [t for t in order[i] if np.isfinite(member_strength[i, t])]
            if not picked:
                result.append([])
                continue
            row = {c: v for c, v in zip(columns, row_values, strict=True)
                   if isinstance(v, (int, float))}
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
        return {"format": CODER_FORMAT, "min_z": self.min_z,
                "feature_names": list(self.feature_names_),
                "stats": {name: asdict(s) for name, s in self.stats_.items()}}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild a coder from ``to_dict`` output."""
        if state.get("format") != CODER_FORMAT:
            raise ValueError(f"reason coder state has format {state.get('format')!r}; this code "
                             f"reads format {CODER_FORMAT}")
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
            guard = _RULES.get(name, _GENERIC_RULE).applies
            if guard is not None and set(guard.meta.root_names()) <= present:
                applies[:, j] = features.select(guard.fill_null(False)).to_series().to_numpy()
        return applies

    def _z_scores(self, features: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
        """Robust z towards abnormal (n_rows × len(names)); -inf where not applicable."""
        if not names:
            return np.empty((features.height, 0))
        values = features.select(pl.col(names).cast(pl.Float64)).to_numpy()
        stats = [self.stats_[n] for n in names]
        logged = np.array([s.log for s in stats])
        values = np.where(logged, _comparison_scale(values, log=True), values)
        center = np.array([s.center for s in stats])
        scale = np.array([s.scale for s in stats])
        signed = (values - center) / scale
        direction = [_RULES.get(n, _GENERIC_RULE).direction for n in names]
        sign = np.array([-1.0 if d == "low" else 1.0 for d in direction])
        z = signed * sign
        both = np.array([d == "both" for d in direction])
        z[:, both] = np.abs(signed[:, both])
        usable = self._applicability(features, names) & np.isfinite(z)
        return np.where(usable, z, -np.inf)

    def _contribution_strength(self, features: pl.DataFrame, names: Sequence[str],
                               z: np.ndarray, contributions: np.ndarray,
                               contribution_names: Sequence[str] | None) -> np.ndarray:
        given = list(contribution_names) if contribution_names is not None \
            else self.feature_names_
        contributions = np.asarray(contributions, dtype=np.float64)
        if contributions.shape != (features.height, len(given)):
            raise ValueError(f"contributions has shape {contributions.shape}; expected "
                             f"({features.height}, {len(given)}) = (rows, contribution_names)")
        index = {n: j for j, n in enumerate(given)}
        strength = np.full_like(z, -np.inf)
        for j, name in enumerate(names):
            if name in index:
                c = contributions[:, index[name]]
                strength[:, j] = np.where((c > 0) & (z[:, j] > 0) & np.isfinite(c), c, -np.inf)
        return strength


_BY_FEATURE: Final[dict[str, ReasonTemplate]] = {
    f: template for template in _TEMPLATES for f in template.features}


def _template_for(feature: str) -> ReasonTemplate:
    return _BY_FEATURE.get(feature) or _generic(feature)


def _require_numeric(frame: pl.DataFrame, names: Sequence[str], label: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"{label} lacks column(s) {missing}")
    wrong = [f"{n} ({frame.schema[n]})" for n in names if not frame.schema[n].is_numeric()]
    if wrong:
        raise ValueError(f"{label}: reason features must be numeric; got {wrong}")

