"""Cleaning: parse a staged frame, accept the good rows, quarantine the rest with a reason.

``clean`` turns an adapter's staged frame (text values, see ``adapters.staged``) into
``accepted`` rows with exactly ``RAW_EVENT_SCHEMA`` (they pass
``event_contract.RawEventsModel``) and ``quarantined`` rows with ``QUARANTINE_SCHEMA``. Nothing is
dropped: ``accepted.height + quarantined.height == staged.height`` always holds, so the ingest
layer can reconcile every landing row.

Normalisation before the rules: surrounding whitespace is trimmed in every column and an empty
string becomes null (so an empty optional field is simply absent, and an empty required field
is "missing"); ``event_type`` is lower-cased. ``event_time`` must be ISO-8601 with an explicit
UTC offset, the form adapters stage it in; an adapter keeps a source time it could not parse as
raw text, and its ``bad_event_time`` reason names the source's time format when the caller gives
it (``time_format_description``).

Rules are checked in the order of ``RULE_CODES`` and a row is quarantined under the first one it
fails. ``duplicate_event_id`` is judged last, among the rows that pass every other rule: the
first such row of an id is accepted and later ones are quarantined, so a valid event is never
lost because an earlier, broken copy of it came first. Ids are unique per partition day, not
per file: ``accepted_earlier`` holds the ids already accepted from the day's earlier files, and a
copy re-delivered in a later file is quarantined with a reason naming the file that holds the
first one. Ids may repeat on other days (sources that restart their ids daily).

Numbers have finite bounds (``schema.NumericBounds``: amount ≤ 1e9 and quantity ≤ 1e6 by
default, rating 1–5): a finite but absurd amount such as 1e308 would overflow feature sums to inf.

Late / early events: the partition day is the UTC date of ``event_time``. A row whose UTC date
is not the partition day being loaded is quarantined as ``out_of_partition`` (never dropped and
never silently moved to another day's partition, which would make reruns of that day
non-idempotent); its reason names the real day so the owner can re-deliver it in that day's file
and rerun that partition. Events more than ``max_future`` after the load time ``now`` are
``future_event_time`` (clock skew or forged times), and events before 2000 are
``event_time_too_old`` (epoch-zero and unit mistakes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

import polars as pl

from anomaly_pipeline.adapters.staged import STAGED_SCHEMA
from anomaly_pipeline.adapters.timestamps import parse_iso8601
from anomaly_pipeline.schema import (
    DEFAULT_BOUNDS,
    EVENT_TYPES,
    MAX_STRING_LENGTH,
    RATING_RANGE,
    RAW_EVENT_COLUMNS,
    RAW_EVENT_SCHEMA,
    UTC_MICROS,
    NumericBounds,
)

QUARANTINE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "event_day": pl.Date(),
    "source_file": pl.String(),
    "rule": pl.String(),
    "reason": pl.String(),
    "raw_record": pl.String(),
    "quarantined_at": UTC_MICROS,
}

DEFAULT_MAX_FUTURE: Final = timedelta(minutes=5)
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)

#: Longest value shown in a reason; the full value stays in ``raw_record``.
_SHOWN_CHARS: Final = 80
#: Largest whole number a float represents exactly; bigger "integers" are not trusted.
_MAX_EXACT_INTEGER: Final = 2**53
#: C0/C1 control characters and U+FFFD (what a lenient decoder leaves for invalid bytes).
_BAD_CHARACTERS: Final = r"[\x00-\x1F\x7F-\x9F\x{FFFD}]"

_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = rf"{_OCTET}(\.{_OCTET}){{3}}"
_HEXTET: Final = "[0-9A-Fa-f]{1,4}"


def _hextets(count: int) -> str:
    return f"{_HEXTET}(:{_HEXTET}){{{count - 1}}}" if count else ""


def _ipv6_pattern() -> str:
    """IPv6 text (RFC 4291 §2.2, no zone id): the full form, then '::' after 0–7 groups."""
    alternatives = [f"({_HEXTET}:){{7}}{_HEXTET}", f"({_HEXTET}:){{6}}{_IPV4}"]
    for left in range(8):
        right = f"({_HEXTET}(:{_HEXTET}){{0,{6 - left}}})?" if left < 7 else ""
        alternatives.append(f"{_hextets(left)}::{right}")
    for left in range(6):
        alternatives.append(f"{_hextets(left)}::({_HEXTET}:){{0,{5 - left}}}{_IPV4}")
    return "|".join(f"({alternative})" for alternative in alternatives)


IP_PATTERN: Final = rf"^(({_IPV4})|{_ipv6_pattern()})$"

_TEXT_COLUMNS: Final = tuple(
    name for name, dtype in RAW_EVENT_SCHEMA.items() if dtype == pl.String() and name != "user_id"
)

# Helper columns of the prepared frame (parsed values); the double underscore keeps them apart
# from canonical names.
_ROW, _TIME, _TYPE, _AMOUNT = "__row", "__event_time", "__event_type", "__amount"
_QUANTITY_NUMBER, _QUANTITY = "__quantity_number", "__quantity"
_RATING = "__rating"
#: The earlier file of the day that already holds a row's event id (null when none does).
_FIRST_FILE = "__first_file"
#: Canonical column → the helper column holding its parsed value (others are taken as text).
_PARSED: Final = {
    "event_time": _TIME,
    "event_type": _TYPE,
    "amount": _AMOUNT,
    "quantity": _QUANTITY,
    "rating": _RATING,
}
_RULE = "rule"
DUPLICATE_EVENT_ID: Final = "duplicate_event_id"


@dataclass(frozen=True)
class Rule:
    """One quarantine rule over the prepared frame: a row fails it where ``fails`` is true."""

    code: str
    fails: pl.Expr
    reason: pl.Expr


@dataclass(frozen=True)
class CleanResult:
    """Accepted rows (``RAW_EVENT_SCHEMA``) and quarantined rows (``QUARANTINE_SCHEMA``)."""

    accepted: pl.DataFrame
    quarantined: pl.DataFrame


def _shown(value: pl.Expr) -> pl.Expr:
    """A value for a reason sentence, cut to ``_SHOWN_CHARS`` characters."""
    return (
        pl.when(value.str.len_chars() > _SHOWN_CHARS)
        .then(pl.concat_str(value.str.slice(0, _SHOWN_CHARS), pl.lit("…")))
        .otherwise(value)
    )


def _format(template: str, *values: pl.Expr) -> pl.Expr:
    """``pl.format`` built on ``concat_str``: polars 2.1.0's ``format`` panics
    (``binview … i < self.len()``) on filtered string columns, which quarantined rows are."""
    pieces = template.split("{}")
    parts: list[pl.Expr] = [pl.lit(pieces[0])]
    for value, piece in zip(values, pieces[1:], strict=True):
        parts += [value.cast(pl.String), pl.lit(piece)]
    return pl.concat_str(parts)


def _time_text(value: pl.Expr) -> pl.Expr:
    return value.dt.to_string("%Y-%m-%d %H:%M:%S%.f UTC")


def _per_column(
    conditions: dict[str, pl.Expr], reason: Callable[[str], pl.Expr]
) -> tuple[pl.Expr, pl.Expr]:
    """Parts of a rule checked in several columns: fails if any does; the reason names the first."""
    return (
        pl.any_horizontal(conditions.values()),
        pl.coalesce(pl.when(cond).then(reason(name)) for name, cond in conditions.items()),
    )


def _whole_number(text: pl.Expr) -> pl.Expr:
    """Text → Int64 where it is a whole number ("3", "+3", "3.0"), else null."""
    number = text.cast(pl.Float64, strict=False)
    exact = number.is_finite() & (number == number.floor()) & (number.abs() <= _MAX_EXACT_INTEGER)
    whole = pl.when(exact).then(number.cast(pl.Int64))
    return pl.coalesce(text.cast(pl.Int64, strict=False), whole)


def normalised(name: str) -> pl.Expr:
    """A staged column as the rules see it: trimmed, an empty string null (e.g. the event ids
    an ingest looks up among the day's earlier batches for ``accepted_earlier``)."""
    return pl.col(name).str.strip_chars().replace("", None)


def _prepare(staged: pl.DataFrame) -> pl.DataFrame:
    """Trim, turn empty strings into nulls, and add the parsed helper columns."""
    trimmed = staged.with_row_index(_ROW).with_columns(
        normalised(name) for name in RAW_EVENT_COLUMNS
    )
    return trimmed.with_columns(
        parse_iso8601(pl.col("event_time")).alias(_TIME),
        pl.col("event_type").str.to_lowercase().alias(_TYPE),
        pl.col("amount").cast(pl.Float64, strict=False).alias(_AMOUNT),
        pl.col("quantity").cast(pl.Float64, strict=False).alias(_QUANTITY_NUMBER),
        _whole_number(pl.col("quantity")).alias(_QUANTITY),
        _whole_number(pl.col("rating")).alias(_RATING),
    )


def _bad_time_reason(time_format_description: str | None) -> pl.Expr:
    if time_format_description is None:
        return _format(
            "event_time '{}' is not an ISO-8601 timestamp with a UTC offset",
            _shown(pl.col("event_time")),
        )
    return _format(
        "event_time '{}' does not match the source's time format " + time_format_description,
        _shown(pl.col("event_time")),
    )


def _rules(
    partition_day: date,
    now: datetime,
    max_future: timedelta,
    bounds: NumericBounds,
    time_format_description: str | None = None,
) -> list[Rule]:
    """The rules in the order they are applied (``duplicate_event_id`` comes after them all)."""
    time, event_day = pl.col(_TIME), pl.col(_TIME).dt.date()
    latest = now + max_future
    amount, quantity_number = pl.col(_AMOUNT), pl.col(_QUANTITY_NUMBER)

    def value(name: str) -> pl.Expr:
        return _shown(pl.col(name))

    def missing(name: str) -> Rule:
        return Rule(
            f"missing_{name}", pl.col(name).is_null(), pl.lit(f"{name} is missing or empty")
        )

    encoding_fails, encoding_reason = _per_column(
        {name: pl.col(name).str.contains(_BAD_CHARACTERS) for name in RAW_EVENT_COLUMNS},
        lambda name: pl.lit(
            f"{name} contains a control character or U+FFFD replacement character (bad encoding)"
        ),
    )
    length_fails, length_reason = _per_column(
        {name: pl.col(name).str.len_chars() > MAX_STRING_LENGTH for name in _TEXT_COLUMNS},
        lambda name: _format(
            f"{name} is {{}} characters long, over the limit of {MAX_STRING_LENGTH}",
            pl.col(name).str.len_chars(),
        ),
    )
    return [
        missing("event_id"),
        missing("user_id"),
        missing("event_time"),
        missing("event_type"),
        Rule("bad_encoding", encoding_fails, encoding_reason),
        Rule(
            "user_id_too_long",
            pl.col("user_id").str.len_chars() > MAX_STRING_LENGTH,
            _format(
                f"user_id is {{}} characters long, over the limit of {MAX_STRING_LENGTH}",
                pl.col("user_id").str.len_chars(),
            ),
        ),
        Rule("string_too_long", length_fails, length_reason),
        Rule("bad_event_time", time.is_null(), _bad_time_reason(time_format_description)),
        Rule(
            "event_time_too_old",
            time < EARLIEST_EVENT_TIME,
            _format(f"event_time {{}} is before {EARLIEST_EVENT_TIME.date()}", _time_text(time)),
        ),
        Rule(
            "future_event_time",
            time > latest,
            _format(
                f"event_time {{}} is more than {max_future} after the load time {now.isoformat()}",
                _time_text(time),
            ),
        ),
        Rule(
            "out_of_partition",
            event_day != partition_day,
            _format(
                f"event_time {{}} falls on {{}}, not on partition day {partition_day}: "
                "re-deliver it in the file of {} (a file spanning several days: "
                "`anomaly-pipeline onboard` splits it by day)",
                _time_text(time),
                event_day,
                event_day,
            ),
        ),
        Rule(
            "unknown_event_type",
            ~pl.col(_TYPE).is_in(EVENT_TYPES),
            _format(
                f"event_type '{{}}' is not one of {', '.join(EVENT_TYPES)}", value("event_type")
            ),
        ),
        Rule(
            "bad_amount",
            pl.col("amount").is_not_null() & amount.is_null(),
            _format("amount '{}' is not a number", value("amount")),
        ),
        Rule(
            "non_finite_amount",
            ~amount.is_finite(),
            _format("amount '{}' is not a finite number", value("amount")),
        ),
        Rule("negative_amount", amount < 0, _format("amount {} is negative", value("amount"))),
        Rule(
            "amount_too_large",
            amount > bounds.max_amount,
            _format(
                f"amount {{}} is above the bound max_amount={bounds.max_amount:g}", value("amount")
            ),
        ),
        Rule(
            "bad_quantity",
            pl.col("quantity").is_not_null() & ~quantity_number.is_finite().fill_null(False),
            _format("quantity '{}' is not a finite number", value("quantity")),
        ),
        Rule(
            "negative_quantity",
            quantity_number < 0,
            _format("quantity {} is negative", value("quantity")),
        ),
        Rule(
            "quantity_too_large",
            quantity_number > bounds.max_quantity,
            _format(
                f"quantity {{}} is above the bound max_quantity={bounds.max_quantity}",
                value("quantity"),
            ),
        ),
        Rule(
            "non_integer_quantity",
            pl.col("quantity").is_not_null() & pl.col(_QUANTITY).is_null(),
            _format("quantity {} is not a whole number (or too large)", value("quantity")),
        ),
        Rule(
            "bad_rating",
            pl.col("rating").is_not_null() & pl.col(_RATING).is_null(),
            _format("rating '{}' is not a whole number", value("rating")),
        ),
        Rule(
            "rating_out_of_range",
            ~pl.col(_RATING).is_between(*RATING_RANGE),
            _format(f"rating {{}} is outside {RATING_RANGE[0]}-{RATING_RANGE[1]}", value("rating")),
        ),
        Rule(
            "malformed_ip",
            ~pl.col("ip").str.contains(IP_PATTERN),
            _format("ip '{}' is not an IPv4 or IPv6 address", value("ip")),
        ),
    ]


#: Every rule code, in the order a row is checked.
RULE_CODES: Final[tuple[str, ...]] = (
    *(
        rule.code
        for rule in _rules(
            date(2000, 1, 1), EARLIEST_EVENT_TIME, DEFAULT_MAX_FUTURE, DEFAULT_BOUNDS
        )
    ),
    DUPLICATE_EVENT_ID,
)


def _duplicate_reason(source_file: str) -> pl.Expr:
    """Why a copy of an accepted id is quarantined; an id accepted from an earlier batch of the
    same file (``accepted_earlier`` of a file read in batches) reads as one from this file."""
    event_id = _shown(pl.col("event_id"))
    return (
        pl.when(pl.col(_FIRST_FILE).is_not_null() & (pl.col(_FIRST_FILE) != source_file))
        .then(
            _format(
                "event_id '{}' was already accepted from file {} of this day",
                event_id,
                pl.col(_FIRST_FILE),
            )
        )
        .otherwise(_format("event_id '{}' repeats an earlier accepted row of this file", event_id))
    )


def _with_first_file(frame: pl.DataFrame, accepted_earlier: pl.DataFrame | None) -> pl.DataFrame:
    """Add ``_FIRST_FILE``: the earlier file of the day that holds the row's event id."""
    if accepted_earlier is None or accepted_earlier.is_empty():
        return frame.with_columns(pl.lit(None, pl.String).alias(_FIRST_FILE))
    earlier = accepted_earlier.select("event_id", pl.col("source_file").alias(_FIRST_FILE))
    return frame.join(earlier, on="event_id", how="left", maintain_order="left")


def _check_arguments(staged: pl.DataFrame, partition_day: date, now: datetime) -> None:
    # Wrong inputs here are programming errors in the caller, not bad data: fail loudly.
    if staged.schema != pl.Schema(STAGED_SCHEMA):
        wrong = {
            name: str(dtype)
            for name, dtype in staged.schema.items()
            if STAGED_SCHEMA.get(name) != dtype
        }
        missing = [name for name in STAGED_SCHEMA if name not in staged.columns]
        raise ValueError(
            "clean() needs a staged frame (every canonical column plus raw_record, all String, "
            f"in order); missing {missing}, unexpected or mistyped {wrong}"
        )
    if isinstance(partition_day, datetime) or not isinstance(partition_day, date):
        raise ValueError(f"partition_day must be a date, got {partition_day!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")


def clean(
    staged: pl.DataFrame,
    *,
    partition_day: date,
    now: datetime,
    source_file: str,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    bounds: NumericBounds = DEFAULT_BOUNDS,
    accepted_earlier: pl.DataFrame | None = None,
    time_format_description: str | None = None,
) -> CleanResult:
    """Split a staged frame (``adapters.STAGED_SCHEMA``) into accepted and quarantined rows.

    ``partition_day`` is the UTC day being loaded, ``now`` the (timezone-aware) load time used
    for the future-time rule and as ``quarantined_at``, ``source_file`` the landing file named
    in the quarantine table, ``bounds`` the numeric bounds, ``accepted_earlier`` the ids
    (``event_id``, ``source_file``) already accepted from earlier files of the same day (or from
    earlier batches of this file: a file may be cleaned in batches with the same result),
    ``time_format_description`` the source's time format in words
    (``SourceReader.time_description``) for the reason of an unparsable time. Rows keep their
    input order in both outputs.
    """
    _check_arguments(staged, partition_day, now)
    now = now.astimezone(UTC)
    rules = _rules(partition_day, now, max_future, bounds, time_format_description)
    flagged = _with_first_file(_prepare(staged), accepted_earlier).with_columns(
        pl.coalesce(pl.when(rule.fails).then(pl.lit(rule.code)) for rule in rules).alias(_RULE)
    )
    passing = flagged.filter(pl.col(_RULE).is_null())
    kept = passing["event_id"].is_first_distinct() & passing[_FIRST_FILE].is_null()
    failed = pl.concat(
        [
            flagged.filter(pl.col(_RULE).is_not_null()),
            passing.filter(~kept).with_columns(pl.lit(DUPLICATE_EVENT_ID).alias(_RULE)),
        ]
    ).sort(_ROW)

    accepted = passing.filter(kept).select(
        pl.col(_PARSED.get(name, name)).cast(dtype).alias(name)
        for name, dtype in RAW_EVENT_SCHEMA.items()
    )

    reasons = [(rule.code, rule.reason) for rule in rules]
    reasons.append((DUPLICATE_EVENT_ID, _duplicate_reason(source_file)))
    quarantined = failed.select(
        pl.lit(partition_day, pl.Date).alias("event_day"),
        pl.lit(source_file, pl.String).alias("source_file"),
        pl.col(_RULE),
        pl.coalesce(pl.when(pl.col(_RULE) == code).then(reason) for code, reason in reasons).alias(
            "reason"
        ),
        pl.col("raw_record"),
        pl.lit(now, UTC_MICROS).alias("quarantined_at"),
    )
    assert accepted.height + quarantined.height == staged.height, (
        f"cleaning lost rows: {accepted.height} accepted + {quarantined.height} quarantined "
        f"!= {staged.height} staged"
    )
    return CleanResult(accepted=accepted, quarantined=quarantined)
