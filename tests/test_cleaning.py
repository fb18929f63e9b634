"""Cleaning: every rule quarantines its row with its code; good rows pass untouched."""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from anomaly_pipeline.adapters import STAGED_SCHEMA
from anomaly_pipeline.cleaning import (
    IP_PATTERN,
    QUARANTINE_SCHEMA,
    RULE_CODES,
    clean,
)
from anomaly_pipeline.event_contract import RawEventsModel
from anomaly_pipeline.schema import MAX_STRING_LENGTH, RAW_EVENT_SCHEMA, NumericBounds

DAY = date(2024, 3, 5)
NOW = datetime(2024, 3, 6, 1, 0, tzinfo=UTC)
GOOD = {
    "event_id": "e1",
    "event_time": "2024-03-05T10:00:00.000000+00:00",
    "user_id": "u1",
    "session_id": "s1",
    "event_type": "purchase",
    "item_id": "i1",
    "category_id": "c1",
    "shop_id": "sh1",
    "amount": "19.5",
    "quantity": "2",
    "device_id": "d1",
    "ip": "10.0.0.1",
    "user_agent": "Mozilla/5.0",
    "channel": "SEO",
    "rating": None,
    "raw_record": '{"row": 1}',
}
TOO_LONG = "x" * (MAX_STRING_LENGTH + 1)


def staged(*rows: dict) -> pl.DataFrame:
    """A staged frame of GOOD rows with each dict's overrides applied."""
    return pl.DataFrame([{**GOOD, **row} for row in rows], schema=STAGED_SCHEMA)


def run(frame: pl.DataFrame, **kwargs):
    result = clean(frame, partition_day=DAY, now=NOW, source_file="events_2024-03-05.csv", **kwargs)
    assert result.accepted.height + result.quarantined.height == frame.height
    return result


# (overrides of the bad row, expected rule, text its reason must contain)
BAD_ROWS = [
    ({"event_id": None}, "missing_event_id", "event_id is missing"),
    ({"event_id": "   "}, "missing_event_id", "event_id is missing"),
    ({"user_id": None}, "missing_user_id", "user_id is missing"),
    ({"user_id": ""}, "missing_user_id", "user_id is missing"),
    ({"user_id": TOO_LONG}, "user_id_too_long", f"user_id is {MAX_STRING_LENGTH + 1} characters"),
    ({"event_time": None}, "missing_event_time", "event_time is missing"),
    ({"event_time": "yesterday"}, "bad_event_time", "event_time 'yesterday' is not an ISO-8601"),
    ({"event_time": "2024-03-05 10:00:00"}, "bad_event_time", "with a UTC offset"),
    ({"event_time": "2024-02-30T10:00:00Z"}, "bad_event_time", "'2024-02-30T10:00:00Z'"),
    ({"event_time": "1970-01-01T00:00:00Z"}, "event_time_too_old", "before 2000-01-01"),
    ({"event_time": "2024-03-06T01:05:01Z"}, "future_event_time", "more than 0:05:00 after"),
    (
        {"event_time": "2024-03-04T23:59:59Z"},
        "out_of_partition",
        "falls on 2024-03-04, not on partition day 2024-03-05",
    ),
    ({"event_time": "2024-03-05T23:30:00-01:00"}, "out_of_partition", "falls on 2024-03-06"),
    ({"event_type": " "}, "missing_event_type", "event_type is missing"),
    ({"event_type": "teleport"}, "unknown_event_type", "event_type 'teleport' is not one of"),
    ({"amount": "12,50"}, "bad_amount", "amount '12,50' is not a number"),
    ({"amount": "NaN"}, "non_finite_amount", "amount 'NaN' is not a finite"),
    ({"amount": "inf"}, "non_finite_amount", "amount 'inf'"),
    ({"amount": "-0.01"}, "negative_amount", "amount -0.01 is negative"),
    ({"amount": "1e308"}, "amount_too_large", "amount 1e308 is above the bound max_amount=1e+09"),
    ({"quantity": "two"}, "bad_quantity", "quantity 'two' is not a finite number"),
    ({"quantity": "-3"}, "negative_quantity", "quantity -3 is negative"),
    ({"quantity": "1.5"}, "non_integer_quantity", "quantity 1.5 is not a whole number"),
    ({"quantity": "1e30"}, "quantity_too_large", "quantity 1e30 is above the bound max_quantity"),
    ({"event_type": "review", "rating": "great"}, "bad_rating", "rating 'great'"),
    ({"event_type": "review", "rating": "4.5"}, "bad_rating", "is not a whole number"),
    ({"event_type": "review", "rating": "6"}, "rating_out_of_range", "rating 6 is outside 1-5"),
    ({"event_type": "review", "rating": "0"}, "rating_out_of_range", "rating 0"),
    ({"item_id": TOO_LONG}, "string_too_long", f"item_id is {MAX_STRING_LENGTH + 1} characters"),
    ({"user_agent": TOO_LONG}, "string_too_long", "user_agent is"),
    ({"user_agent": "Mozilla\ufffd"}, "bad_encoding", "user_agent contains"),
    ({"device_id": "d\x001"}, "bad_encoding", "device_id contains a control character"),
    ({"user_id": "u\x1b[31m"}, "bad_encoding", "user_id contains"),
    ({"ip": "999.1.1.1"}, "malformed_ip", "ip '999.1.1.1' is not an IPv4 or IPv6"),
    ({"ip": "10.0.0"}, "malformed_ip", "ip '10.0.0'"),
    ({"ip": "2001:db8:::1"}, "malformed_ip", "ip '2001:db8:::1'"),
]


@pytest.mark.parametrize(
    "override, rule, reason",
    BAD_ROWS,
    ids=[f"{rule}-{i}" for i, (_, rule, _) in enumerate(BAD_ROWS)],
)
def test_bad_row_is_quarantined_under_its_rule(override, rule, reason):
    frame = staged({"event_id": "e1"}, {"event_id": "e2", **override}, {"event_id": "e3"})
    result = run(frame)
    assert result.quarantined["rule"].to_list() == [rule]
    assert reason in result.quarantined["reason"][0]
    assert result.accepted["event_id"].to_list() == ["e1", "e3"]


def test_every_rule_code_is_exercised():
    covered = {rule for _, rule, _ in BAD_ROWS} | {"duplicate_event_id"}
    assert covered == set(RULE_CODES)
    assert len(RULE_CODES) == len(set(RULE_CODES)) >= 20


def test_clean_rows_pass_untouched():
    frame = staged(
        {},
        {
            "event_id": "e2",
            "event_type": "review",
            "rating": "5",
            "amount": None,
            "quantity": None,
            "ip": "2001:db8::8a2e:370:7334",
        },
        {
            "event_id": "e3",
            "event_type": "view",
            "amount": "0",
            "quantity": "0",
            "event_time": "2024-03-05T23:59:59.999999Z",
        },
    )
    result = run(frame)
    assert result.quarantined.height == 0
    assert result.accepted.schema == pl.Schema(RAW_EVENT_SCHEMA)
    RawEventsModel.validate(result.accepted)
    first = result.accepted.row(0, named=True)
    assert first == {
        "event_id": "e1",
        "event_time": datetime(2024, 3, 5, 10, tzinfo=UTC),
        "user_id": "u1",
        "session_id": "s1",
        "event_type": "purchase",
        "item_id": "i1",
        "category_id": "c1",
        "shop_id": "sh1",
        "amount": 19.5,
        "quantity": 2,
        "device_id": "d1",
        "ip": "10.0.0.1",
        "user_agent": "Mozilla/5.0",
        "channel": "SEO",
        "rating": None,
    }
    assert result.accepted["rating"].to_list() == [None, 5, None]
    assert result.accepted["event_time"][2] == datetime(2024, 3, 5, 23, 59, 59, 999_999, tzinfo=UTC)


def test_normalisation_trims_nulls_empties_lowercases_and_converts_offsets():
    result = run(
        staged(
            {
                "user_id": "  u1\t",
                "event_type": " Purchase ",
                "session_id": "",
                "shop_id": "   ",
                "quantity": "3.0",
                "amount": " 1e1 ",
                "event_time": "2024-03-06T00:30:00+01:00",
            }
        )
    )
    row = result.accepted.row(0, named=True)
    assert (row["user_id"], row["event_type"]) == ("u1", "purchase")
    assert (row["session_id"], row["shop_id"]) == (None, None)
    assert (row["quantity"], row["amount"]) == (3, 10.0)
    assert row["event_time"] == datetime(2024, 3, 5, 23, 30, tzinfo=UTC)


def test_duplicates_keep_the_first_and_quarantine_the_rest():
    frame = staged(
        {"event_id": "a", "item_id": "first"},
        {"event_id": "b"},
        {"event_id": "a", "item_id": "second"},
        {"event_id": "a", "item_id": "third"},
    )
    result = run(frame)
    assert result.accepted["item_id"].to_list() == ["first", "i1"]
    assert result.quarantined["rule"].to_list() == ["duplicate_event_id"] * 2
    assert "event_id 'a' repeats an earlier accepted row" in result.quarantined["reason"][0]


def test_redelivered_file_quarantines_every_repeat():
    # Two concatenated deliveries with long (non-inlined) ids: polars 2.1.0's ``pl.format``
    # panicked on exactly this shape, which is why cleaning builds reasons with concat_str.
    once = staged(*({"event_id": f"{i:040x}"} for i in range(500)))
    result = run(pl.concat([once, once]))
    assert result.accepted["event_id"].to_list() == once["event_id"].to_list()
    assert result.quarantined["rule"].unique().to_list() == ["duplicate_event_id"]
    assert result.quarantined["reason"][0] == (
        f"event_id '{0:040x}' repeats an earlier accepted row of this file"
    )


def test_ids_accepted_from_an_earlier_file_of_the_day_are_duplicates_naming_that_file():
    earlier = pl.DataFrame({"event_id": ["a"], "source_file": ["events_2024-03-05_part1.csv"]})
    frame = staged({"event_id": "a"}, {"event_id": "b"}, {"event_id": "b"})
    result = run(frame, accepted_earlier=earlier)
    assert result.accepted["event_id"].to_list() == ["b"]
    assert result.quarantined["rule"].to_list() == ["duplicate_event_id"] * 2
    assert result.quarantined["reason"].to_list() == [
        "event_id 'a' was already accepted from file events_2024-03-05_part1.csv of this day",
        "event_id 'b' repeats an earlier accepted row of this file",
    ]


def test_numeric_bounds_are_configurable():
    frame = staged({"amount": "5e9", "quantity": "2"}, {"event_id": "e2", "quantity": "2000000"})
    assert run(frame).quarantined["rule"].to_list() == ["amount_too_large", "quantity_too_large"]
    lenient = run(frame, bounds=NumericBounds(max_amount=1e10, max_quantity=10_000_000))
    assert lenient.quarantined.height == 0
    with pytest.raises(ValueError, match="max_amount must be a finite number"):
        NumericBounds(max_amount=float("inf"))


def test_a_broken_first_copy_does_not_cost_the_valid_one():
    frame = staged({"event_id": "a", "amount": "oops"}, {"event_id": "a", "item_id": "valid"})
    result = run(frame)
    assert result.accepted["item_id"].to_list() == ["valid"]
    assert result.quarantined["rule"].to_list() == ["bad_amount"]


def test_first_failing_rule_wins():
    result = run(staged({"user_id": None, "amount": "x", "ip": "nope", "event_time": "later"}))
    assert result.quarantined["rule"].to_list() == ["missing_user_id"]


def test_quarantine_table_shape_and_provenance():
    raw = '{"user_id": null, "original": true}'
    result = run(staged({"user_id": None, "raw_record": raw}, {"event_id": "e2"}))
    assert result.quarantined.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert result.quarantined.row(0, named=True) == {
        "event_day": DAY,
        "source_file": "events_2024-03-05.csv",
        "rule": "missing_user_id",
        "reason": "user_id is missing or empty",
        "raw_record": raw,
        "quarantined_at": NOW,
    }


def test_long_values_are_shortened_in_reasons_only():
    long_type = "t" * 300
    result = run(staged({"event_type": long_type}))
    reason = result.quarantined["reason"][0]
    assert "t" * 80 + "…" in reason and long_type not in reason


def test_max_future_is_configurable():
    frame = staged({"event_time": "2024-03-05T23:59:00Z"})
    early = datetime(2024, 3, 5, 23, 0, tzinfo=UTC)
    strict = clean(frame, partition_day=DAY, now=early, source_file="f")
    lenient = clean(
        frame, partition_day=DAY, now=early, source_file="f", max_future=timedelta(hours=1)
    )
    assert strict.quarantined["rule"].to_list() == ["future_event_time"]
    assert lenient.accepted.height == 1


def test_empty_frame():
    result = run(pl.DataFrame(schema=STAGED_SCHEMA))
    assert result.accepted.schema == pl.Schema(RAW_EVENT_SCHEMA) and result.accepted.height == 0
    assert result.quarantined.schema == pl.Schema(QUARANTINE_SCHEMA)


def test_invalid_arguments_are_programming_errors():
    frame = staged({})
    with pytest.raises(ValueError, match="naive"):
        clean(frame, partition_day=DAY, now=datetime(2024, 3, 6), source_file="f")
    with pytest.raises(ValueError, match="partition_day must be a date"):
        clean(frame, partition_day=NOW, now=NOW, source_file="f")
    with pytest.raises(ValueError, match=r"missing \['raw_record'\]"):
        clean(frame.drop("raw_record"), partition_day=DAY, now=NOW, source_file="f")
    with pytest.raises(ValueError, match="'amount': 'Float64'"):
        clean(
            frame.with_columns(pl.col("amount").cast(pl.Float64)),
            partition_day=DAY,
            now=NOW,
            source_file="f",
        )


def test_ip_pattern_agrees_with_the_standard_library():
    candidates = [
        "0.0.0.0",
        "255.255.255.255",
        "256.0.0.1",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "::",
        "::1",
        "1::",
        "fe80::1",
        "2001:db8::8a2e:370:7334",
        "2001:0db8:0:0:0:ff00:42:8329",
        "::ffff:192.0.2.1",
        "64:ff9b::192.0.2.1",
        "1::2:3.4.5.6",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "1:2:3:4:5:6:7:8:9",
        ":::",
        "1::2::3",
        "12345::",
        "g::1",
        "1:2:3:4:5:6:1.2.3.4",
        "1:2:3:4:5:6:7:1.2.3.4",
        "::1.2.3.4",
        "1.2.3.4 ",
        "",
        "abc",
    ]

    def valid(text: str) -> bool:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            return False
        return True

    matched = pl.Series(candidates).str.contains(IP_PATTERN).to_list()
    assert matched == [valid(text) for text in candidates]


@pytest.mark.slow
def test_a_million_rows_clean_in_seconds():
    rows = 1_000_000
    index = pl.int_range(rows, eager=True)
    frame = pl.DataFrame(
        {name: pl.Series(name, [None] * rows, dtype=pl.String) for name in STAGED_SCHEMA}
    ).with_columns(
        ("e" + index.cast(pl.String)).alias("event_id"),
        ("u" + (index % 50_000).cast(pl.String)).alias("user_id"),
        pl.lit("2024-03-05T10:00:00+00:00").alias("event_time"),
        pl.when(index % 100 == 0)
        .then(pl.lit("teleport"))
        .otherwise(pl.lit("view"))
        .alias("event_type"),
        (index % 997).cast(pl.String).alias("amount"),
        pl.lit("10.0.0.1").alias("ip"),
        pl.lit("{}").alias("raw_record"),
    )
    started = time.perf_counter()
    result = run(frame)
    elapsed = time.perf_counter() - started
    assert result.quarantined.height == rows // 100
    assert elapsed < 20, f"cleaning 1M rows took {elapsed:.1f} s"
