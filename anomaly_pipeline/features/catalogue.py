"""The feature catalogue: every column of ``features.user_day_features``, written once.

Adding a feature means one ``Feature`` entry here and its SQL in
``dbt_features/models/marts/user_day_features.sql``. Everything else is derived from this list:

* the dbt macro ``catalogue()`` (``dbt_features/macros/catalogue.sql``): the column list and order
  of the mart, the event-type → count-column map and the constants the SQL needs;
* the mart's documentation and tests (``dbt_features/models/marts/_marts.yml``), which
  ``dbt docs generate`` (``make docs``) turns into the column reference;
* the pandera contract (``anomaly_pipeline.feature_contract``);
* the reason rules (``anomaly_pipeline.reasons``): direction of abnormality, log scale, when a
  feature applies, and its reason template (a ``Phrase`` here, or the name of a template in
  ``reasons/templates.py`` that phrases several features describing one fact).

The two generated files are checked in (dbt parses offline, without Python);
``python -m anomaly_pipeline.features.catalogue --write`` rewrites them and
``--check`` (and tests/test_feature_catalogue.py) fails when they are stale.
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

Direction = Literal["high", "low", "both"]

# -- constants shared by the SQL, the contract, the reasons and the benchmark -----------------
SECONDS_PER_DAY: Final = 86_400.0
#: Days (ending on the day) over which the account features look for the user's signup: a
#: bounded look-back, so a day's build reads a fixed number of earlier days however long the
#: history grows, and a re-run or an out-of-order backfill of a day gives the same rows.
ACCOUNT_WINDOW_DAYS: Final = 90
#: first_purchase_delay_s when the user bought nothing that day or has no signup in the account
#: window ("never": the whole window).
NO_PURCHASE_DELAY_S: Final = ACCOUNT_WINDOW_DAYS * SECONDS_PER_DAY
#: account_age_days when the user has no signup in the account window (older, or unknown).
NO_ACCOUNT_AGE_DAYS: Final = ACCOUNT_WINDOW_DAYS + 1
#: A user's session ends after this long without an event.
SESSION_GAP_MINUTES: Final = 30
#: Trailing days before the partition day that the history features look back over.
HISTORY_WINDOW_DAYS: Final = 7
#: Days (ending on the day) over which the *_window sharing features count users.
SHARING_WINDOW_DAYS: Final = 7
#: A coefficient of variation over fewer events is noise, not machine regularity.
MIN_EVENTS_FOR_REGULARITY: Final = 5
#: Canonical event type → the mart's count column.
EVENT_COUNT_COLUMNS: Final[dict[str, str]] = {
    "signup": "n_signups",
    "login": "n_logins",
    "view": "n_views",
    "click": "n_clicks",
    "search": "n_searches",
    "fav": "n_favs",
    "cart": "n_carts",
    "purchase": "n_purchases",
    "review": "n_reviews",
    "refund": "n_refunds",
    "coupon": "n_coupons",
}

KEY_COLUMNS: Final[tuple[str, str]] = ("user_key", "event_day")


@dataclass(frozen=True)
class Check:
    """The values a feature's definition guarantees (a violation is a bug upstream)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    isin: tuple[float, ...] | None = None

    @property
    def text(self) -> str:
        if self.isin is not None:
            return " or ".join(f"{v:g}" for v in self.isin)
        low = f"≥ {self.ge:g}" if self.ge is not None else f"> {self.gt:g}"
        return low if self.le is None else f"{low}, ≤ {self.le:g}"


COUNT: Final = Check(ge=0)
AT_LEAST_ONE: Final = Check(ge=1)  # a row exists only for a user active that day
SHARE: Final = Check(ge=0, le=1)
WITHIN_DAY_S: Final = Check(ge=0, le=SECONDS_PER_DAY)
FLAG: Final = Check(isin=(0.0, 1.0))
POSITIVE: Final = Check(gt=0)

_OPERATORS: Final[dict[str, Callable[[pl.Expr, float], pl.Expr]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
}


@dataclass(frozen=True)
class When:
    """A condition on one column of the row: where a feature means something."""

    column: str
    op: Literal[">", ">=", "<"]
    value: float

    @property
    def expr(self) -> pl.Expr:
        return _OPERATORS[self.op](pl.col(self.column), self.value)

    @property
    def text(self) -> str:
        return f"{self.column} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Phrase:
    """A one-feature reason: ``text`` with ``{value}`` (the value in ``fmt``) and ``{s}`` /
    ``{es}`` (plural endings), then the comparison with the population: for a "low" feature
    `` (population median <m>)``, else ``, <k>× the population median``."""

    code: str
    text: str
    fmt: Literal["int", "whole", "one_decimal", "pct", "duration", "money"] = "int"


@dataclass(frozen=True)
class Feature:
    """One column of the mart.

    ``direction``: which side of the population is abnormal. ``log``: compared as ``log1p(x)``
    (skewed, multiplicative quantities: counts, amounts, durations, rates) rather than as is
    (shares, flags, day counts, ratings). ``applies``: the rows on which the feature means
    anything (None: all). ``reason``: a ``Phrase``, or the name of a composite template in
    ``anomaly_pipeline.reasons.templates``. ``windowed``: computed over the trailing history /
    sharing window, so it sees less than a full window on the first days of any data (drift
    leaves such features out on those warm-up days).
    """

    name: str
    group: str
    description: str
    check: Check
    direction: Direction
    reason: Phrase | str
    log: bool = True
    applies: When | None = None
    windowed: bool = False
    dtype: Literal["double"] = "double"


_VIEWS = When("n_views", ">", 0)
_SESSIONS = When("n_sessions", ">", 0)
_TWO_EVENTS = When("n_events", ">=", 2)
_REGULAR = When("n_events", ">=", MIN_EVENTS_FOR_REGULARITY)
_REVIEWS = When("n_reviews", ">", 0)
#: on a user's first active day every device is new: only established accounts count
_HISTORY = When("history_days", ">", 0)
_H = HISTORY_WINDOW_DAYS
_A = ACCOUNT_WINDOW_DAYS


def _count(name: str, event: str, text: str, code: str) -> Feature:
    return Feature(
        name,
        "Counts",
        f"Number of {event} events of the user on the day.",
        COUNT,
        "high",
        Phrase(code, text),
    )


FEATURES: Final[tuple[Feature, ...]] = (
    # -- counts
    Feature(
        "n_events",
        "Counts",
        "Number of events of the user on the day (≥ 1: a row exists only for an active user-day).",
        AT_LEAST_ONE,
        "high",
        "volume_events",
    ),
    Feature(
        "n_sessions",
        "Counts",
        f"Sessions: the day's events split wherever "
        f"{SESSION_GAP_MINUTES} minutes pass without an event.",
        AT_LEAST_ONE,
        "high",
        Phrase("many_sessions", "{value} session{s} today"),
    ),
    Feature(
        "n_views",
        "Counts",
        "Number of view events of the user on the day.",
        COUNT,
        "high",
        "volume_views",
    ),
    _count("n_clicks", "click", "{value} click{s}", "high_click_count"),
    _count("n_searches", "search", "{value} search{es}", "high_search_count"),
    _count("n_favs", "fav", "{value} item{s} favourited", "high_fav_count"),
    _count("n_carts", "cart", "{value} add-to-cart{s}", "high_cart_count"),
    Feature(
        "n_purchases",
        "Counts",
        "Number of purchase events of the user on the day.",
        COUNT,
        "high",
        "volume_purchases",
    ),
    _count("n_reviews", "review", "{value} review{s} written today", "many_reviews"),
    _count("n_refunds", "refund", "{value} refund{s} requested", "many_refunds"),
    _count("n_coupons", "coupon", "{value} coupon{s} used", "many_coupons"),
    _count("n_logins", "login", "{value} login{s} today", "many_logins"),
    _count("n_signups", "signup", "{value} signup{s} today", "repeated_signups"),
    # -- rates / depth / dwell (ratios over counts floored at 1 may exceed 1)
    Feature(
        "cart_or_buy_per_view",
        "Rates / depth / dwell",
        "(n_carts + n_purchases) / max(n_views, 1): carting or buying without a view still shows.",
        COUNT,
        "high",
        "purchase_per_view",
        applies=_VIEWS,
    ),
    Feature(
        "cart_to_purchase_rate",
        "Rates / depth / dwell",
        "n_purchases / max(n_carts, 1).",
        COUNT,
        "high",
        Phrase("high_cart_to_purchase", "{value} of carts bought", "pct"),
        applies=When("n_carts", ">", 0),
    ),
    Feature(
        "views_per_session",
        "Rates / depth / dwell",
        "n_views / n_sessions.",
        COUNT,
        "high",
        Phrase("high_views_per_session", "{value} views per session", "whole"),
        applies=_SESSIONS,
    ),
    Feature(
        "max_views_per_session",
        "Rates / depth / dwell",
        "Most views in any one session of the day.",
        COUNT,
        "high",
        Phrase("long_view_burst", "{value} views in a single session"),
        applies=_SESSIONS,
    ),
    Feature(
        "dwell_mean_s",
        "Rates / depth / dwell",
        "Mean seconds from a view to the user's next "
        "event in the same session (0 when no view has a next event).",
        WITHIN_DAY_S,
        "low",
        Phrase("short_dwell", "{value} average dwell per event", "duration"),
        applies=_TWO_EVENTS,
    ),
    Feature(
        "session_duration_mean_s",
        "Rates / depth / dwell",
        "Mean seconds from a session's first to its last event.",
        WITHIN_DAY_S,
        "high",
        Phrase("long_sessions", "sessions last {value} on average", "duration"),
        applies=_SESSIONS,
    ),
    Feature(
        "views_per_active_minute",
        "Rates / depth / dwell",
        "n_views per active minute, each session counting as at least one minute.",
        COUNT,
        "high",
        Phrase("high_view_rate", "{value} views/min", "one_decimal"),
        applies=_VIEWS,
    ),
    # -- money / reviews
    Feature(
        "purchase_amount_sum",
        "Money / reviews",
        "Sum of the day's purchase amounts (0 without a purchase).",
        COUNT,
        "high",
        Phrase("high_spend", "spent {value} today", "money"),
    ),
    Feature(
        "purchase_amount_mean",
        "Money / reviews",
        "Mean purchase amount (0 without a purchase).",
        COUNT,
        "high",
        Phrase("high_order_value", "average order {value}", "money"),
        applies=When("n_purchases", ">", 0),
    ),
    Feature(
        "rating_mean",
        "Money / reviews",
        "Mean review rating, 1-5 (0 when no review).",
        Check(ge=0, le=5),
        "both",
        "rating",
        log=False,
        applies=_REVIEWS,
    ),
    Feature(
        "extreme_rating_share",
        "Money / reviews",
        "Share of the day's rated reviews rated 1 or 5 (0 when none).",
        SHARE,
        "high",
        "extreme_ratings",
        log=False,
        applies=_REVIEWS,
    ),
    # -- timing (gaps between a user's consecutive events of the day; 0 for a one-event day)
    Feature(
        "interval_mean_s",
        "Timing",
        "Mean gap in seconds between the user's consecutive events of the day.",
        WITHIN_DAY_S,
        "low",
        Phrase("rapid_events", "an event every {value} on average", "duration"),
        applies=_TWO_EVENTS,
    ),
    Feature(
        "interval_std_s",
        "Timing",
        "Population standard deviation of those gaps.",
        WITHIN_DAY_S,
        "low",
        "regularity",
        applies=_REGULAR,
    ),
    Feature(
        "interval_cv",
        "Timing",
        "interval_std_s / interval_mean_s (0 when the mean is 0): "
        "clicks on a timer have a tiny CV.",
        COUNT,
        "low",
        "regularity",
        applies=_REGULAR,
    ),
    Feature(
        "interval_min_s",
        "Timing",
        "Shortest of those gaps.",
        WITHIN_DAY_S,
        "low",
        Phrase("rapid_fire_events", "shortest gap between events {value}", "duration"),
        applies=_TWO_EVENTS,
    ),
    Feature(
        "night_share",
        "Timing",
        "Share of the day's events between 00:00 and 05:00 in the "
        "source's local time (dbt var source_timezone, default UTC; partitions stay UTC "
        "days).",
        SHARE,
        "high",
        Phrase("night_activity", "{value} of activity at night (00–05 source local time)", "pct"),
        log=False,
    ),
    Feature(
        "first_purchase_delay_s",
        "Account",
        f"Seconds from the user's first signup in the {_A} days ending on the day (that day "
        f"or earlier) to the day's first purchase, clipped to [0, {NO_PURCHASE_DELAY_S:.0f}]; "
        f'{NO_PURCHASE_DELAY_S:.0f} ({_A} days, "never") when the user bought nothing that '
        f"day or has no signup in those days.",
        Check(ge=0, le=NO_PURCHASE_DELAY_S),
        "low",
        "signup_delay",
        applies=When("first_purchase_delay_s", "<", NO_PURCHASE_DELAY_S),
        windowed=True,
    ),
    Feature(
        "account_age_days",
        "Account",
        f"Days from the user's first signup in the {_A} days ending on the day to the day (0: "
        f"signed up that day), on a day with any event besides signups; {NO_ACCOUNT_AGE_DAYS} "
        f"when none in those days (an older account, or a source without signups) or the user "
        f"only signed up (every account's first day: as a value it only added noise, measured "
        f"on the fraud log). Fresh accounts that act carry most fraud.",
        Check(ge=0, le=NO_ACCOUNT_AGE_DAYS),
        "low",
        "account_age",
        applies=When("account_age_days", "<", NO_ACCOUNT_AGE_DAYS),
        windowed=True,
    ),
    # -- breadth / sharing
    Feature(
        "distinct_items",
        "Breadth / sharing",
        "Distinct items the user acted on.",
        COUNT,
        "high",
        Phrase("many_distinct_items", "{value} distinct items viewed"),
    ),
    Feature(
        "distinct_categories",
        "Breadth / sharing",
        "Distinct categories the user acted on.",
        COUNT,
        "high",
        Phrase("many_distinct_categories", "{value} distinct categories browsed"),
    ),
    Feature(
        "distinct_shops",
        "Breadth / sharing",
        "Distinct shops the user acted on.",
        COUNT,
        "high",
        Phrase("many_distinct_shops", "{value} distinct shops visited"),
    ),
    Feature(
        "distinct_devices",
        "Breadth / sharing",
        "Distinct devices the user acted from.",
        COUNT,
        "high",
        Phrase("many_devices", "{value} device{s} used today"),
    ),
    Feature(
        "distinct_ips",
        "Breadth / sharing",
        "Distinct IP addresses the user acted from.",
        COUNT,
        "high",
        Phrase("many_ips", "{value} IP address{es} today"),
    ),
    Feature(
        "distinct_ip_networks",
        "Breadth / sharing",
        "Distinct IP networks (/24, /48) the user acted from.",
        COUNT,
        "high",
        Phrase("many_ip_networks", "{value} IP network{s} today"),
    ),
    Feature(
        "users_per_device_hour",
        "Breadth / sharing",
        "Most users sharing any one of the user's devices within one UTC clock hour in which "
        "the user used it (0 without a device): a burst of accounts on one device.",
        COUNT,
        "high",
        "shared_device",
    ),
    Feature(
        "users_per_ip_network_hour",
        "Breadth / sharing",
        "Most users sharing any one of the user's IP networks within one UTC clock hour in "
        "which the user used it (0 without one).",
        COUNT,
        "high",
        "shared_ip_network",
    ),
    Feature(
        "users_per_device_day",
        "Breadth / sharing",
        "Most users sharing any one of the user's devices on the day (0 without a device).",
        COUNT,
        "high",
        "shared_device",
    ),
    Feature(
        "users_per_ip_network_day",
        "Breadth / sharing",
        "Most users sharing any one of the user's IP networks on the day (0 without one).",
        COUNT,
        "high",
        "shared_ip_network",
    ),
    Feature(
        "users_per_device_window",
        "Breadth / sharing",
        f"Most users sharing any one of the "
        f"user's devices over the {SHARING_WINDOW_DAYS} days ending on the day.",
        COUNT,
        "high",
        "shared_device",
        windowed=True,
    ),
    Feature(
        "users_per_ip_network_window",
        "Breadth / sharing",
        f"Most users sharing any one of "
        f"the user's IP networks over the {SHARING_WINDOW_DAYS} days ending on the day.",
        COUNT,
        "high",
        "shared_ip_network",
        windowed=True,
    ),
    # -- history (the user's active days among the trailing days before the day)
    Feature(
        "history_days",
        "History",
        f"Active days of the user in the {_H} days before the day.",
        Check(ge=0, le=_H),
        "low",
        "history",
        log=False,
        windowed=True,
    ),
    Feature(
        "days_since_last_active",
        "History",
        f"Days since the user's previous active day, "
        f"1-{_H}; {_H + 1} when none in the {_H} days before. A long-dormant account "
        f"that is suddenly active is a classic account-takeover sign.",
        Check(ge=1, le=_H + 1),
        "high",
        Phrase("dormant_account_returns", "previous active day {value} day{s} ago"),
        log=False,
        applies=_HISTORY,
        windowed=True,
    ),
    Feature(
        "events_vs_7d_median",
        "History",
        f"(n_events + 1) / (median over the {_H}-day "
        f"history + 1), smoothed because a median is often 0; 1 without history.",
        POSITIVE,
        "high",
        "volume_events",
        applies=_HISTORY,
        windowed=True,
    ),
    Feature(
        "views_vs_7d_median",
        "History",
        "Same ratio for n_views.",
        POSITIVE,
        "high",
        "volume_views",
        applies=_HISTORY,
        windowed=True,
    ),
    Feature(
        "purchases_vs_7d_median",
        "History",
        "Same ratio for n_purchases.",
        POSITIVE,
        "high",
        "volume_purchases",
        applies=_HISTORY,
        windowed=True,
    ),
    Feature(
        "new_device",
        "History",
        f"1 when the user has history and used a device on the day "
        f"not seen in the {_H} days before.",
        FLAG,
        "high",
        "new_access",
        log=False,
        applies=_HISTORY,
        windowed=True,
    ),
    Feature(
        "new_ip_network",
        "History",
        f"1 when the user has history and used an IP network "
        f"on the day not seen in the {_H} days before.",
        FLAG,
        "high",
        "new_access",
        log=False,
        applies=_HISTORY,
        windowed=True,
    ),
)

BY_NAME: Final[dict[str, Feature]] = {feature.name: feature for feature in FEATURES}
#: Feature columns in catalogue order (the mart's column order after the keys).
FEATURE_COLUMNS: Final[tuple[str, ...]] = tuple(BY_NAME)

# -- generated files --------------------------------------------------------------------------
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DBT_MACRO_FILE: Final = REPO_ROOT / "dbt_features" / "macros" / "catalogue.sql"
DBT_MART_YML: Final = REPO_ROOT / "dbt_features" / "models" / "marts" / "_marts.yml"
_GENERATED: Final = (
    "Generated by `python -m anomaly_pipeline.features.catalogue --write` from "
    "anomaly_pipeline/features/catalogue.py; do not edit."
)


def dbt_macro() -> str:
    """The dbt macro ``catalogue()``: what the SQL needs from this module, as one dict."""
    from anomaly_pipeline.schema import EVENT_TYPES, LABEL_TYPES

    values = {
        "features": [{"name": f.name, "dtype": f.dtype} for f in FEATURES],
        "event_count_columns": EVENT_COUNT_COLUMNS,
        "no_purchase_delay_s": int(NO_PURCHASE_DELAY_S),
        "session_gap_minutes": SESSION_GAP_MINUTES,
        "history_days": HISTORY_WINDOW_DAYS,
        "sharing_window_days": SHARING_WINDOW_DAYS,
        # the values the staging tests accept (schema.py's contract, not restated in yml)
        "event_types": list(EVENT_TYPES),
        "label_types": list(LABEL_TYPES),
        "account_window_days": ACCOUNT_WINDOW_DAYS,
        "no_account_age_days": NO_ACCOUNT_AGE_DAYS,
    }
    body = json.dumps(values, indent=4, ensure_ascii=False)
    return (
        f"{{#- {_GENERATED} -#}}\n{{% macro catalogue() -%}}\n"
        f"    {{{{- return({body}) -}}}}\n{{%- endmacro %}}\n"
    )


def _column_description(feature: Feature) -> str:
    applies = f" Meaningful when {feature.applies.text}." if feature.applies else ""
    scale = "log1p scale" if feature.log else "as is"
    side = {"high": "high values", "low": "low values", "both": "both sides"}[feature.direction]
    return (
        f"[{feature.group}] {feature.description} Values: {feature.check.text}. Abnormal: "
        f"{side} (compared {scale}).{applies}"
    )


def _yaml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string


def marts_yml() -> str:
    """``_marts.yml``: the mart documented column by column, with its key tests."""
    # A row constructor: one struct value on DuckDB and Spark alike.
    key_expression = f"({', '.join(KEY_COLUMNS)})"
    lines = [
        f"# {_GENERATED}",
        "version: 2",
        "",
        "models:",
        "  - name: user_day_features",
        "    description: >",
        "      One row per (user_key, event_day) of an active user, every feature a non-null "
        "double.",
        "      The columns come from anomaly_pipeline/features/catalogue.py; the pandera contract",
        "      derived from it (a blocking Dagster asset check) checks every column's bounds.",
        "    data_tests:",
        "      # dbt's built-in unique on the key as one value (dbt_utils is not installable "
        "offline)",
        "      - unique:",
        f'          column_name: "{key_expression}"',
        "    columns:",
        "      - name: user_key",
        "        description: Pseudonymised user id (HMAC of the source's user_id).",
        "        data_tests: [not_null]",
        "      - name: event_day",
        "        description: UTC day of the events (the partition).",
        "        data_tests: [not_null]",
    ]
    for feature in FEATURES:
        lines += [
            f"      - name: {feature.name}",
            f"        description: {_yaml_string(_column_description(feature))}",
            f"        data_type: {feature.dtype}",
            "        data_tests: [not_null]",
        ]
    return "\n".join(lines) + "\n"


def generated_files() -> dict[Path, str]:
    """Every file derived from the catalogue, with its expected content."""
    return {DBT_MACRO_FILE: dbt_macro(), DBT_MART_YML: marts_yml()}


def stale_files() -> list[Path]:
    """Generated files whose checked-in content differs from the catalogue."""
    return [
        path
        for path, text in generated_files().items()
        if not path.exists() or path.read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the generated files")
    action.add_argument("--check", action="store_true", help="fail if any is stale")
    args = parser.parse_args(argv)
    if args.write:
        for path, text in generated_files().items():
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    stale = stale_files()
    for path in stale:
        print(
            f"stale: {path.relative_to(REPO_ROOT)} (run python -m "
            f"anomaly_pipeline.features.catalogue --write)",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
