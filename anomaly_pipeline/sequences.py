"""Behaviour sequences: each user's ordered events of a day as fixed-length arrays.

``build_sequences`` turns pseudonymised staging events into one row per (user_key, event_day)
with three aligned lists of length ``max_len``:

- ``tokens``: ``1 + index in EVENT_TYPES`` per event, ``0`` = padding;
- ``log_gaps``: ``log1p`` of the seconds since the user's previous event that day (0 for the
  day's first event);
- ``category_change``: 1 when the event's category differs from the last category seen earlier
  that day (events without a category, such as logins, neither count nor reset it), else 0.

Events are in time order (ties keep input order). A day with more than ``max_len`` events keeps
its most recent ``max_len`` (``truncated`` is true, ``n_events`` still counts them all); gaps and
category changes are computed on the whole day first, so the first kept event carries its true
gap rather than 0. Shorter days are right-padded: real events occupy positions
``0 .. min(n_events, max_len) - 1`` and padding (token 0, gap 0, change 0) follows, which is what
the mask of ``sequences_to_arrays`` marks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import ClassVar, Final

import numpy as np
import pandera.polars as pa
import polars as pl

from anomaly_pipeline.schema import EVENT_TYPES
from anomaly_pipeline.warehouse import (
    HashPart,
    count_by_day,
    day_chunks,
    partition_writer,
    read_days_in,
)

DEFAULT_MAX_LEN: Final = 64
#: Events built into sequences at a time: a 10 M-event day in one frame took the step to 4.5 GiB
#: (README "Benchmarks"); in parts of its users it stays near what one part needs.
MAX_EVENTS_PER_BUILD: Final = 2_000_000
PAD_TOKEN: Final = 0
#: Event type → token; 0 is reserved for padding.
EVENT_TOKENS: Final[dict[str, int]] = {name: index + 1 for index, name in enumerate(EVENT_TYPES)}
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    "user_key",
    "event_day",
    "event_time",
    "event_id",
    "event_type",
    "category_id",
)
KEY_COLUMNS: Final[tuple[str, ...]] = ("user_key", "event_day")
SEQUENCE_SCHEMA: Final[dict[str, pl.DataType]] = {
    "user_key": pl.String(),
    "event_day": pl.Date(),
    "n_events": pl.Int64(),
    "tokens": pl.List(pl.Int64()),
    "log_gaps": pl.List(pl.Float64()),
    "category_change": pl.List(pl.Int64()),
    "truncated": pl.Boolean(),
}
_LIST_COLUMNS: Final = ("tokens", "log_gaps", "category_change")


def _check_events(events: pl.DataFrame, max_len: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    missing = [name for name in INPUT_COLUMNS if name not in events.columns]
    if missing:
        raise ValueError(
            f"events lack column(s) {missing} needed for sequences; have {events.columns}"
        )
    for name in ("user_key", "event_day", "event_time", "event_id", "event_type"):
        nulls = events[name].null_count()
        if nulls:
            raise ValueError(f"events column {name!r} has {nulls} null value(s); it is required")
    unknown = events.filter(~pl.col("event_type").is_in(EVENT_TYPES))["event_type"].unique()
    if unknown.len():
        raise ValueError(
            f"events column 'event_type' has unknown value(s) "
            f"{sorted(unknown.to_list())[:10]}; known: {list(EVENT_TYPES)}"
        )


def _padded(column: str, max_len: int, fill: int | float, dtype: pl.DataType) -> pl.Expr:
    # Appending one broadcast literal list and cutting back is several times faster in polars
    # than building a per-row list of padding (``repeat_by``).
    padding = pl.lit(pl.Series([[fill] * max_len], dtype=pl.List(dtype)))
    return pl.concat_list(pl.col(column), padding).list.head(max_len).alias(column)


def _steps(ordered: pl.DataFrame) -> pl.DataFrame:
    """Per-event token, gap and category change on events sorted by (user_key, event_day, time).

    Written with whole-column shifts and forward fills instead of ``over(keys)`` windows: with
    hundreds of thousands of small groups the windows are several times slower.
    """
    row = pl.int_range(pl.len())
    starts_day = (
        (pl.col("user_key") != pl.col("user_key").shift(1))
        | (pl.col("event_day") != pl.col("event_day").shift(1))
    ).fill_null(True)
    seconds = pl.col("event_time").diff().dt.total_microseconds() / 1e6
    category = pl.col("category_id")
    # The last category seen before this event (forward fill) counts only if it was seen on the
    # same user-day, i.e. at or after the row where that day starts.
    day_start_row = pl.when(starts_day).then(row).forward_fill()
    last_category_row = pl.when(category.is_not_null()).then(row).forward_fill().shift(1)
    last_category = category.forward_fill().shift(1)
    return ordered.with_columns(
        pl.col("event_type").replace_strict(EVENT_TOKENS, return_dtype=pl.Int64).alias("token"),
        pl.when(starts_day).then(0.0).otherwise(seconds).log1p().alias("gap"),
        (
            category.is_not_null()
            & (last_category_row >= day_start_row)
            & (category != last_category)
        )
        .fill_null(False)
        .cast(pl.Int64)
        .alias("change"),
    )


def build_sequences(events: pl.DataFrame, max_len: int = DEFAULT_MAX_LEN) -> pl.DataFrame:
    """One row per (user_key, event_day) with ``SEQUENCE_SCHEMA``, sorted by the keys.

    A user's events are in time order, events at the same instant in event-id order (ids are
    unique per day): a total order, so the sequences do not depend on the order the events
    come in — which for a table dbt wrote is not fixed — and the sort need not be stable (a
    stable sort of a 2 M-event part took 2.3 times as long).

    Raises ``ValueError`` naming the column when a required column is absent or null, or when
    an event type is not one of ``EVENT_TYPES``.
    """
    _check_events(events, max_len)
    keys = list(KEY_COLUMNS)
    ordered = (
        events.select(INPUT_COLUMNS)
        .with_columns(pl.col("event_day").cast(pl.Date))
        .sort([*keys, "event_time", "event_id"])
    )
    # Groups appear in sorted key order, and maintain_order keeps it.
    grouped = (
        _steps(ordered)
        .group_by(keys, maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("n_events"),
            pl.col("token").tail(max_len).alias("tokens"),
            pl.col("gap").tail(max_len).alias("log_gaps"),
            pl.col("change").tail(max_len).alias("category_change"),
        )
    )
    return grouped.with_columns(
        _padded("tokens", max_len, PAD_TOKEN, pl.Int64()),
        _padded("log_gaps", max_len, 0.0, pl.Float64()),
        _padded("category_change", max_len, 0, pl.Int64()),
        (pl.col("n_events") > max_len).alias("truncated"),
    ).select(pl.col(name).cast(dtype) for name, dtype in SEQUENCE_SCHEMA.items())


def write_sequences(
    warehouse_path: Path,
    days: Sequence[date],
    *,
    events_table: str,
    sequences_table: str,
    max_len: int = DEFAULT_MAX_LEN,
    days_per_chunk: int = 1,
    max_events: int = MAX_EVENTS_PER_BUILD,
) -> dict[date, tuple[int, int]]:
    """Replace ``days`` of ``sequences_table`` with the validated sequences of ``events_table``'s
    events, built ``days_per_chunk`` days at a time; returns each day's (rows, truncated rows).
    A chunk of more than ``max_events`` events is built in parts of its users (a hash of
    ``user_key``), each under ``max_events`` on average.

    Why chunks: a sequence never spans two days or two users, so the chunks and parts are
    ``build_sequences`` of the whole range row for row, while memory follows a part, not the
    range. They are written by one
    ``partition_writer`` (each chunk staged and committed, the range published at the end), so the
    range is still replaced at once or, on a failure, not at all. Each chunk passes
    ``sequences_model(max_len)``; a failing one raises pandera's ``SchemaErrors`` for its rows.
    """
    contract = sequences_model(max_len)
    events_by_day = count_by_day(warehouse_path, events_table, days)
    counts = dict.fromkeys(days, (0, 0))
    with partition_writer(
        warehouse_path, {sequences_table: SEQUENCE_SCHEMA}, days, keep_row_order=False
    ) as writer:
        for chunk in day_chunks(days, days_per_chunk):
            n_parts = max(1, math.ceil(sum(events_by_day[day] for day in chunk) / max_events))
            for index in range(n_parts):
                part = HashPart("user_key", index, n_parts) if n_parts > 1 else None
                events = read_days_in(
                    writer, events_table, chunk, columns=list(INPUT_COLUMNS), part=part
                )
                sequences = contract.validate(build_sequences(events, max_len=max_len), lazy=True)
                writer.insert(sequences_table, sequences)
                per_day = sequences.group_by("event_day").agg(pl.len(), pl.col("truncated").sum())
                for day, n, truncated in per_day.iter_rows():
                    rows_before, truncated_before = counts[day]
                    counts[day] = (rows_before + int(n), truncated_before + int(truncated))
    return counts


class BehaviourSequencesModel(pa.DataFrameModel):
    """pandera contract of ``features.behaviour_sequences`` for ``DEFAULT_MAX_LEN``.

    Use ``sequences_model(max_len)`` for another length. Besides types and unique keys it checks
    that the lists have the configured length, that tokens are in range, gaps finite and
    non-negative, changes 0/1, and that the padding agrees with ``n_events`` / ``truncated``.
    """

    _max_len = DEFAULT_MAX_LEN

    user_key: str = pa.Field(nullable=False, str_length={"min_value": 1})
    event_day: pl.Date = pa.Field(nullable=False)
    n_events: int = pa.Field(nullable=False, ge=1)
    tokens: list[int] = pa.Field(nullable=False)
    log_gaps: list[float] = pa.Field(nullable=False)
    category_change: list[int] = pa.Field(nullable=False)
    truncated: bool = pa.Field(nullable=False)

    class Config:
        strict = True
        unique: ClassVar[list[str]] = list(KEY_COLUMNS)

    @pa.dataframe_check
    @classmethod
    def lists_have_max_len(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.all_horizontal(pl.col(name).list.len() == cls._max_len for name in _LIST_COLUMNS)
        )

    @pa.dataframe_check
    @classmethod
    def tokens_in_range(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("tokens")
            .list.eval(pl.element().is_between(PAD_TOKEN, len(EVENT_TYPES)))
            .list.all()
        )

    @pa.dataframe_check
    @classmethod
    def gaps_finite_non_negative(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("log_gaps").list.eval(pl.element().is_finite() & (pl.element() >= 0)).list.all()
        )

    @pa.dataframe_check
    @classmethod
    def category_change_binary(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("category_change").list.eval(pl.element().is_in([0, 1])).list.all()
        )

    @pa.dataframe_check
    @classmethod
    def padding_matches_n_events(cls, data: pa.PolarsData) -> pl.LazyFrame:
        kept = pl.min_horizontal(pl.col("n_events"), pl.lit(cls._max_len))
        tokens = pl.col("tokens")
        return data.lazyframe.select(
            tokens.list.slice(0, kept).list.eval(pl.element() != PAD_TOKEN).list.all()
            & tokens.list.slice(kept).list.eval(pl.element() == PAD_TOKEN).list.all()
            & (pl.col("truncated") == (pl.col("n_events") > cls._max_len))
        )


@cache
def sequences_model(max_len: int) -> type[BehaviourSequencesModel]:
    """The ``BehaviourSequencesModel`` contract for sequences built with ``max_len``."""
    if max_len == DEFAULT_MAX_LEN:
        return BehaviourSequencesModel
    return type(
        f"BehaviourSequencesModel{max_len}",
        (BehaviourSequencesModel,),
        {"_max_len": max_len, "__doc__": f"Sequences contract for max_len={max_len}."},
    )


def sequences_to_arrays(
    sequences: pl.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sequences → ``(tokens int64 [n, L], gaps float32 [n, L], category float32 [n, L],
    mask bool [n, L])`` for the sequence model; ``mask`` is true on real (non-padding) events.

    Raises ``ValueError`` when the lists do not all share one length ``L``.
    """
    rows = sequences.height
    lengths = pl.concat([sequences[name].list.len() for name in _LIST_COLUMNS]).unique()
    if lengths.len() > 1:
        raise ValueError(
            f"sequence lists have differing lengths {sorted(lengths.to_list())}; "
            "build them with one max_len"
        )
    width = int(lengths[0]) if rows else 0

    def matrix(name: str, dtype: type[np.generic]) -> np.ndarray:
        return sequences[name].explode().to_numpy().astype(dtype).reshape(rows, width)

    tokens = matrix("tokens", np.int64)
    return (
        tokens,
        matrix("log_gaps", np.float32),
        matrix("category_change", np.float32),
        tokens != PAD_TOKEN,
    )
