"""Reason templates: how a strong feature (or a group of features describing one fact) reads.

A catalogue feature whose ``reason`` is a ``Phrase`` gets a template built from it here; a
feature whose ``reason`` names a composite (``COMPOSITES``) shares that template with the other
features of its fact (``new_device`` + ``new_ip_network``; ``n_events`` +
``events_vs_7d_median``; a sharing count today + over the window), phrased by whichever member is
strongest. A column outside the catalogue gets a generic template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Final

from anomaly_pipeline.features.catalogue import FEATURES, SHARING_WINDOW_DAYS, Feature, Phrase
from anomaly_pipeline.reasons.statistics import FeatureStats

Row = Mapping[str, float]
Stats = Mapping[str, FeatureStats]
#: (row values, the strongest member feature, population stats) -> (code, text)
Renderer = Callable[[Row, str, Stats], tuple[str, str]]


@dataclass(frozen=True)
class ReasonTemplate:
    """A reason built from one or more features describing the same fact.

    ``render`` reads the row's values of ``features`` and of ``context`` (columns that add to
    the text without being the fact: the number of reviews an average rating is over) and of
    no other column, so the coder hands it those alone, once per distinct combination of them.
    """

    features: tuple[str, ...]
    render: Renderer
    context: tuple[str, ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        """Every column ``render`` may read (a missing or null one is absent from its row)."""
        return self.features + self.context


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
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} days"


def _money(value: float) -> str:
    return f"{value:,.2f}"


#: ``Phrase.fmt`` → formatter of the value (and of the population median it is compared with).
FORMATS: Final[dict[str, Callable[[float], str]]] = {
    "int": _int,
    "whole": lambda v: f"{v:.0f}",
    "one_decimal": lambda v: f"{v:.1f}",
    "pct": _pct,
    "duration": _duration,
    "money": _money,
}


def _vs_population(value: float, stats: FeatureStats, fmt: Callable[[float], str]) -> str:
    """The comparison that makes a high value unusual: a multiple of the population median, or
    the median itself when it is zero (a multiple of zero says nothing)."""
    if stats.median > 0:
        return f"{_ratio(value / stats.median)} the population median"
    return f"population median {fmt(stats.median)}"


# -- one-feature phrases from the catalogue ---------------------------------------------------
def _phrased(feature: Feature, phrase: Phrase) -> ReasonTemplate:
    """ "Too much of X": ``<text>, <k>× the population median``; "suspiciously little X" (a
    "low" feature): ``<text> (population median <m>)``."""
    fmt, name = FORMATS[phrase.fmt], feature.name

    def render(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
        value = row[name]
        singular = round(value) == 1
        text = phrase.text.format(
            value=fmt(value), s="" if singular else "s", es="" if singular else "es"
        )
        if feature.direction == "low":
            return phrase.code, f"{text} (population median {fmt(stats[name].median)})"
        return phrase.code, f"{text}, {_vs_population(value, stats[name], fmt)}"

    return ReasonTemplate((name,), render)


# -- composites: several features, one fact ----------------------------------------------------
def _volume(count: str, history_ratio: str, code: str, noun: str) -> ReasonTemplate:
    """Today's count against the population, or against the user's own 7-day median when that
    is what makes it unusual (the ratio feature is the stronger member)."""

    def render(row: Row, trigger: str, stats: Stats) -> tuple[str, str]:
        value = row.get(count)
        if trigger == history_ratio or value is None:
            today = "" if value is None else f" ({_int(value)} today)"
            return code, f"{_ratio(row[history_ratio])} the user's 7-day median {noun}s{today}"
        return code, (f"{_plural(value, noun)} today, {_vs_population(value, stats[count], _int)}")

    return ReasonTemplate((count, history_ratio), render)


def _shared(hour: str, day: str, window: str, code: str, thing: str) -> ReasonTemplate:
    """Sharing within an hour, today, or over the trailing window: whichever is the unusual
    part."""

    def render(row: Row, trigger: str, _stats: Stats) -> tuple[str, str]:
        if trigger == hour:
            return code, f"{thing} shared by {_int(row[hour])} users within one hour"
        if trigger == day:
            return code, f"{thing} shared by {_int(row[day])} users today"
        today = "" if row.get(day) is None else f" ({_int(row[day])} today)"
        return code, f"{thing} shared by {_int(row[window])} users over the trailing window{today}"

    return ReasonTemplate((hour, day, window), render)


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
    return "unusual_rating", (
        f"average rating {row['rating_mean']:.1f} stars{over} "
        f"(population median {stats['rating_mean'].median:.1f})"
    )


def _extreme(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    reviews = row.get("n_reviews")
    of = "" if reviews is None else f" of {_plural(reviews, 'review')}"
    return "extreme_ratings", (
        f"{_pct(row['extreme_rating_share'])}{of} rated 1 or 5 stars "
        f"(population median "
        f"{_pct(stats['extreme_rating_share'].median)})"
    )


def _per_view(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    per_ten = row["cart_or_buy_per_view"] * 10
    median = stats["cart_or_buy_per_view"].median * 10
    return "high_purchase_per_view", (
        f"{per_ten:.0f} carts or purchases per 10 views (population median {median:.1f})"
    )


def _regularity(row: Row, trigger: str, stats: Stats) -> tuple[str, str]:
    """CV (relative) and std (absolute) of the gaps are one fact: clicks on a timer."""
    if trigger == "interval_cv":
        text = (
            f"machine-regular clicks: interval CV {row['interval_cv']:.2f} "
            f"(population median {stats['interval_cv'].median:.2f})"
        )
    else:
        text = (
            f"machine-regular clicks: gaps vary by {_duration(row['interval_std_s'])} "
            f"(population median {_duration(stats['interval_std_s'].median)})"
        )
    return "machine_regular_intervals", text


#: The device-sharing counts a fast purchase is put in context with, widest scope first.
_DEVICE_SHARING: Final[tuple[tuple[str, str], ...]] = (
    ("users_per_device_window", f" in {SHARING_WINDOW_DAYS} days"),
    ("users_per_device_day", " today"),
)


def _on_shared_device(row: Row) -> str:
    """`` on a device used by 12 accounts in 7 days`` when the user's device is shared (the
    context that makes a fast purchase a ring's), else nothing."""
    for column, scope in _DEVICE_SHARING:
        accounts = row.get(column)
        if accounts is not None:
            return f" on a device used by {_int(accounts)} accounts{scope}" if accounts >= 2 else ""
    return ""


def _signup_delay(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    return "purchase_right_after_signup", (
        f"purchase {_duration(row['first_purchase_delay_s'])} after signup"
        f"{_on_shared_device(row)} (population median "
        f"{_duration(stats['first_purchase_delay_s'].median)})"
    )


def _account_age(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
    days = row["account_age_days"]
    age = "created today" if days < 1 else f"{_plural(days, 'day')} old"
    median = stats["account_age_days"].median
    return "new_account", f"account {age} (population median {_plural(median, 'day')})"


#: Templates named by the catalogue's ``Feature.reason`` strings.
COMPOSITES: Final[dict[str, ReasonTemplate]] = {
    "volume_events": _volume("n_events", "events_vs_7d_median", "high_event_volume", "event"),
    "volume_views": _volume("n_views", "views_vs_7d_median", "high_view_count", "view"),
    "volume_purchases": _volume(
        "n_purchases", "purchases_vs_7d_median", "high_purchase_count", "purchase"
    ),
    "purchase_per_view": ReasonTemplate(("cart_or_buy_per_view",), _per_view),
    "rating": ReasonTemplate(("rating_mean",), _rating, ("n_reviews",)),
    "extreme_ratings": ReasonTemplate(("extreme_rating_share",), _extreme, ("n_reviews",)),
    "regularity": ReasonTemplate(("interval_cv", "interval_std_s"), _regularity),
    "signup_delay": ReasonTemplate(
        ("first_purchase_delay_s",), _signup_delay, tuple(c for c, _ in _DEVICE_SHARING)
    ),
    "account_age": ReasonTemplate(("account_age_days",), _account_age),
    "shared_device": _shared(
        "users_per_device_hour",
        "users_per_device_day",
        "users_per_device_window",
        "shared_device",
        "device",
    ),
    "shared_ip_network": _shared(
        "users_per_ip_network_hour",
        "users_per_ip_network_day",
        "users_per_ip_network_window",
        "shared_ip_network",
        "IP network",
    ),
    "history": ReasonTemplate(("history_days",), _history),
    "new_access": ReasonTemplate(("new_device", "new_ip_network"), _new_access),
}


def feature_template(feature: Feature) -> ReasonTemplate:
    """The template of a catalogue feature: its ``Phrase``, or the composite it names."""
    if isinstance(feature.reason, Phrase):
        return _phrased(feature, feature.reason)
    template = COMPOSITES.get(feature.reason)
    if template is None or feature.name not in template.features:
        raise ValueError(
            f"catalogue feature {feature.name!r} names reason template "
            f"{feature.reason!r}, which does not exist or does not phrase it"
        )
    return template


#: Every catalogue feature's template (built at import, so a broken catalogue entry fails fast).
_BY_FEATURE: Final[dict[str, ReasonTemplate]] = {f.name: feature_template(f) for f in FEATURES}
#: Every feature with its own wording (the catalogue's features).
TEMPLATED_FEATURES: Final[frozenset[str]] = frozenset(_BY_FEATURE)


@cache
def _generic(feature: str) -> ReasonTemplate:
    """Fallback for a column outside the catalogue."""

    def render(row: Row, _trigger: str, stats: Stats) -> tuple[str, str]:
        value, median = row[feature], stats[feature].median
        side = "high" if value > median else "low"
        return f"unusual_{feature}", (
            f"unusually {side} {feature}: {value:.3g} (population median {median:.3g})"
        )

    return ReasonTemplate((feature,), render)


def template_for(feature: str) -> ReasonTemplate:
    """The template that phrases ``feature`` (a generic one outside the catalogue)."""
    return _BY_FEATURE.get(feature) or _generic(feature)
