"""Behaviour sequences: tokens, gaps, category changes, padding, truncation and the contract."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from pandera.errors import SchemaError

from anomaly_pipeline.schema import EVENT_TYPES
from anomaly_pipeline.sequences import (
    DEFAULT_MAX_LEN,
    EVENT_TOKENS,
    SEQUENCE_SCHEMA,
    BehaviourSequencesModel,
    build_sequences,
    sequences_model,
    sequences_to_arrays,
)

DAY, NEXT_DAY = date(2024, 3, 5), date(2024, 3, 6)
START = datetime(2024, 3, 5, 8, 0, tzinfo=UTC)


def at(seconds: float, day: date = DAY) -> datetime:
    return datetime.combine(day, START.timetz()) + timedelta(seconds=seconds)


def events(rows: list[tuple[str, date, datetime, str, str | None]]) -> pl.DataFrame:
    """Events in the given order, with event ids e0, e1, ... in that order."""
    return pl.DataFrame(
        rows,
        schema={
            "user_key": pl.String,
            "event_day": pl.Date,
            "event_time": pl.Datetime("us", "UTC"),
            "event_type": pl.String,
            "category_id": pl.String,
        },
        orient="row",
    ).with_columns(event_id=pl.format("e{}", pl.int_range(pl.len())))


# User "a" on DAY, given out of order: view(c1)@0, login@3, purchase(c2)@10, view(c1)@20.
# User "b" has one event on DAY and two on NEXT_DAY.
FIXTURE = events(
    [
        ("a", DAY, at(10), "purchase", "c2"),
        ("b", DAY, at(5), "view", "c1"),
        ("a", DAY, at(0), "view", "c1"),
        ("a", DAY, at(3), "login", None),
        ("a", DAY, at(20), "view", "c1"),
        ("b", NEXT_DAY, at(0, NEXT_DAY), "search", None),
        ("b", NEXT_DAY, at(59, NEXT_DAY), "view", "c9"),
    ]
)
VIEW, LOGIN, PURCHASE, SEARCH = (
    EVENT_TOKENS[name] for name in ("view", "login", "purchase", "search")
)


def test_tokens_follow_event_types():
    assert {name: index + 1 for index, name in enumerate(EVENT_TYPES)} == EVENT_TOKENS
    assert (VIEW, LOGIN, PURCHASE) == (3, 2, 8)


def test_hand_made_fixture_gives_expected_sequences():
    result = build_sequences(FIXTURE, max_len=6)
    assert result.schema == pl.Schema(SEQUENCE_SCHEMA)
    assert result.select("user_key", "event_day").rows() == [
        ("a", DAY),
        ("b", DAY),
        ("b", NEXT_DAY),
    ]
    a, b_day, b_next = result.iter_rows(named=True)
    assert a["tokens"] == [VIEW, LOGIN, PURCHASE, VIEW, 0, 0]
    assert a["log_gaps"] == pytest.approx(
        [0.0, math.log1p(3), math.log1p(7), math.log1p(10), 0.0, 0.0]
    )
    # The login has no category; the purchase's c2 differs from the last seen c1, then back to c1.
    assert a["category_change"] == [0, 0, 1, 1, 0, 0]
    assert (a["n_events"], a["truncated"]) == (4, False)
    assert b_day["tokens"] == [VIEW, 0, 0, 0, 0, 0] and b_day["log_gaps"] == [0.0] * 6
    # Gaps restart each day: the first event of NEXT_DAY has gap 0.
    assert b_next["tokens"] == [SEARCH, VIEW, 0, 0, 0, 0]
    assert b_next["log_gaps"] == pytest.approx([0.0, math.log1p(59), 0, 0, 0, 0])
    assert b_next["category_change"] == [0] * 6


def test_truncation_keeps_the_most_recent_events_with_their_true_gaps():
    result = build_sequences(FIXTURE.filter(pl.col("user_key") == "a"), max_len=2)
    row = result.row(0, named=True)
    assert row["tokens"] == [PURCHASE, VIEW]
    assert row["log_gaps"] == pytest.approx([math.log1p(7), math.log1p(10)])
    assert row["category_change"] == [1, 1]
    assert (row["n_events"], row["truncated"]) == (4, True)


def test_events_at_the_same_instant_follow_their_ids_whatever_the_input_order():
    tied = events([("u", DAY, at(0), "view", "c1"), ("u", DAY, at(0), "cart", "c2")])
    expected = [[VIEW, EVENT_TOKENS["cart"]]]  # e0 then e1
    assert build_sequences(tied, max_len=2)["tokens"].to_list() == expected
    assert build_sequences(tied.reverse(), max_len=2)["tokens"].to_list() == expected
    renamed = tied.with_columns(event_id=pl.Series(["e9", "e1"]))
    assert build_sequences(renamed, max_len=2)["tokens"].to_list() == [[EVENT_TOKENS["cart"], VIEW]]


def test_default_length_and_contract():
    result = build_sequences(FIXTURE)
    assert result["tokens"].list.len().to_list() == [DEFAULT_MAX_LEN] * 3
    BehaviourSequencesModel.validate(result)
    sequences_model(6).validate(build_sequences(FIXTURE, max_len=6))


def test_empty_input_gives_empty_typed_frame():
    result = build_sequences(FIXTURE.clear())
    assert result.height == 0 and result.schema == pl.Schema(SEQUENCE_SCHEMA)


def _valid() -> pl.DataFrame:
    return build_sequences(FIXTURE, max_len=4)


@pytest.mark.parametrize(
    "corrupt, check",
    [
        (lambda df: df.with_columns(pl.col("tokens").list.head(3)), "lists_have_max_len"),
        (
            lambda df: df.with_columns(pl.col("tokens").list.eval(pl.element() + 20)),
            "tokens_in_range",
        ),
        (
            lambda df: df.with_columns(pl.col("log_gaps").list.eval(pl.element() - 5)),
            "gaps_finite_non_negative",
        ),
        (
            lambda df: df.with_columns(pl.col("category_change").list.eval(pl.element() * 2)),
            "category_change_binary",
        ),
        (lambda df: df.with_columns(pl.col("n_events") + 1), "padding_matches_n_events"),
        (lambda df: df.with_columns(~pl.col("truncated")), "padding_matches_n_events"),
        (lambda df: pl.concat([df, df.head(1)]), "unique"),
        (
            lambda df: df.with_columns(pl.col("tokens").cast(pl.List(pl.Int32))),
            r"got List\(Int32\)",
        ),
        (lambda df: df.with_columns(extra=pl.lit(1)), "extra"),
    ],
)
def test_contract_rejects_bad_frames(corrupt, check):
    model = sequences_model(4)
    model.validate(_valid())
    with pytest.raises(SchemaError, match=check):
        model.validate(corrupt(_valid()))


def test_contract_for_default_length_rejects_other_lengths():
    with pytest.raises(SchemaError, match="lists_have_max_len"):
        BehaviourSequencesModel.validate(_valid())


def test_sequences_to_arrays():
    tokens, gaps, category, mask = sequences_to_arrays(_valid())
    assert tokens.shape == gaps.shape == category.shape == mask.shape == (3, 4)
    assert (tokens.dtype, gaps.dtype, category.dtype, mask.dtype) == (
        np.int64,
        np.float32,
        np.float32,
        np.bool_,
    )
    np.testing.assert_array_equal(tokens[0], [VIEW, LOGIN, PURCHASE, VIEW])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_allclose(gaps[2], [0.0, math.log1p(59), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(category[0], [0, 0, 1, 1])


def test_sequences_to_arrays_rejects_ragged_lists():
    ragged = _valid().with_columns(pl.col("log_gaps").list.head(2))
    with pytest.raises(ValueError, match="differing lengths"):
        sequences_to_arrays(ragged)


@pytest.mark.parametrize(
    "frame, message",
    [
        (FIXTURE.drop("category_id"), r"lack column\(s\) \['category_id'\]"),
        (FIXTURE.with_columns(pl.lit("teleport").alias("event_type")), "unknown value"),
        (FIXTURE.with_columns(pl.lit(None, pl.String).alias("user_key")), "'user_key' has 7 null"),
    ],
)
def test_bad_events_raise_naming_the_column(frame, message):
    with pytest.raises(ValueError, match=message):
        build_sequences(frame)


def test_max_len_must_be_positive():
    with pytest.raises(ValueError, match="max_len must be at least 1"):
        build_sequences(FIXTURE, max_len=0)
