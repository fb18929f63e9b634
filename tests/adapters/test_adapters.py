"""Source adapters: staged frames from each format, mappings, and whole-file rejection."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
import yaml

from anomaly_pipeline.adapters import (
    SOURCE_FORMATS,
    STAGED_SCHEMA,
    MalformedSourceError,
    MappingError,
    load_mapping,
    read_source,
)
from anomaly_pipeline.adapters.mapping import parse_mapping
from anomaly_pipeline.cleaning import clean
from anomaly_pipeline.event_contract import RawEventsModel
from anomaly_pipeline.schema import RAW_EVENT_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CLICKSTREAM_MAPPING = ROOT / "resources" / "mappings" / "example_clickstream.yaml"
TAOBAO_SAMPLE = (
    ROOT.parent / "shared" / "data" / "taobao_userbehavior" / "UserBehavior_sample110k.csv"
)
LOAD_TIME = datetime(2030, 1, 1, tzinfo=UTC)


def yaml_document() -> dict:
    """The example clickstream mapping as a fresh, editable document."""
    return yaml.safe_load(CLICKSTREAM_MAPPING.read_text())


def _clean(staged: pl.DataFrame, day: date, source_file: str = "test"):
    return clean(staged, partition_day=day, now=LOAD_TIME, source_file=source_file)


# --- taobao ------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not TAOBAO_SAMPLE.exists(),
    reason=f"real Taobao sample not present at {TAOBAO_SAMPLE} "
    "(the shared data folder beside the checkout)",
)
def test_taobao_real_sample_matches_published_counts():
    staged = read_source("taobao", TAOBAO_SAMPLE)
    assert staged.schema == pl.Schema(STAGED_SCHEMA)
    assert staged.height == 110_300
    result = _clean(staged, date(2017, 11, 26), source_file=TAOBAO_SAMPLE.name)
    duplicates = result.quarantined.filter(pl.col("rule") == "duplicate_event_id").height
    # The sample has no repeated rows (measured), so nothing else may be quarantined.
    assert duplicates == 0
    assert result.quarantined.height == 0
    counts = dict(result.accepted.group_by("event_type").len().iter_rows())
    assert counts == {"view": 98_361, "cart": 6_063, "fav": 3_383, "purchase": 2_493}
    assert result.accepted["user_id"].n_unique() == 66_454
    assert result.accepted["item_id"].n_unique() == 84_793
    # 1511658000 is 2017-11-26 01:00:00 UTC (09:00 in UTC+8).
    assert result.accepted["event_time"].min() == datetime(2017, 11, 26, 1, 0, tzinfo=UTC)
    RawEventsModel.validate(result.accepted)


def test_taobao_maps_behaviour_and_time_and_dedups_identical_rows(tmp_path):
    path = tmp_path / "tb.csv"
    path.write_text(
        "1,10,100,pv,1511658000\n"
        "1,10,100,buy,1511658060\n"
        "1,10,100,pv,1511658000\n"  # identical to the first row: the same event, delivered twice
        "2,11,101,cart,1511658001\n"
        "2,11,101,fav,1511658002\n"
        "3,12,102,like,1511658003\n"
    )
    staged = read_source("taobao", path)
    assert staged["event_type"].to_list() == ["view", "purchase", "view", "cart", "fav", "like"]
    assert staged["event_time"][0] == "2017-11-26T01:00:00.000000+00:00"
    assert staged["event_id"][0] == staged["event_id"][2] != staged["event_id"][1]
    assert json.loads(staged["raw_record"][5]) == {
        "user_id": "3",
        "item_id": "12",
        "category_id": "102",
        "behavior_type": "like",
        "timestamp": "1511658003",
    }
    result = _clean(staged, date(2017, 11, 26))
    assert result.accepted.height + result.quarantined.height == staged.height
    assert result.quarantined["rule"].to_list() == ["duplicate_event_id", "unknown_event_type"]
    assert result.accepted["item_id"].to_list() == ["10", "10", "11", "11"]


def test_taobao_event_ids_are_stable_across_reads(tmp_path):
    path = tmp_path / "tb.csv"
    path.write_text("1,10,100,pv,1511658000\n")
    assert (
        read_source("taobao", path)["event_id"].to_list()
        == read_source("taobao", path)["event_id"].to_list()
    )


# --- fraud_log ---------------------------------------------------------------------------------


def test_fraud_log_rows_become_signup_and_purchase_events():
    path = FIXTURES / "fraud_log_sample.csv"
    staged = read_source("fraud_log", path)
    assert staged.height == 2 * 6
    assert staged["event_type"].to_list() == ["signup", "purchase"] * 6
    first_signup, first_purchase = staged.row(0, named=True), staged.row(1, named=True)
    assert first_signup["event_time"] == "2015-02-24T22:55:49.000000+00:00"
    assert first_purchase["event_time"] == "2015-04-18T02:47:11.000000+00:00"
    assert (first_purchase["amount"], first_purchase["quantity"]) == ("34", "1")
    assert (first_signup["amount"], first_signup["quantity"]) == (None, None)
    for event in (first_signup, first_purchase):
        assert event["user_id"] == "22058"
        assert event["channel"] == "SEO"
        assert event["user_agent"] == "Chrome"
        assert event["device_id"] == "QVPSPJUOCKZAR"
        assert event["ip"] == "43.173.1.96"  # 732758368 as a dotted quad
        assert json.loads(event["raw_record"])["sex"] == "M"
    assert staged["ip"][-1] == "192.168.0.12"  # dotted input is kept
    assert staged["event_id"].n_unique() == staged.height


def test_fraud_log_cleaning_keeps_partition_events_and_quarantines_the_rest():
    staged = read_source("fraud_log", FIXTURES / "fraud_log_sample.csv")
    result = _clean(staged, date(2015, 1, 1))
    # Row 3 signed up and bought on 2015-01-01; every other event belongs to another day.
    assert result.accepted["event_type"].to_list() == ["signup", "purchase"]
    assert result.accepted["ip"].to_list() == ["156.64.132.28"] * 2
    assert result.accepted["amount"].to_list() == [None, 15.0]
    assert set(result.quarantined["rule"]) == {"out_of_partition"}
    assert result.accepted.height + result.quarantined.height == staged.height
    assert "falls on 2015-02-24" in result.quarantined["reason"][0]


# --- mapped ------------------------------------------------------------------------------------


def _clickstream_variants(tmp_path: Path) -> dict[str, Path]:
    """The CSV fixture plus the same export as typed Parquet and as JSON Lines."""
    csv_path = FIXTURES / "clickstream_sample.csv"
    typed = pl.read_csv(csv_path, schema_overrides={"click_id": pl.String, "visitor": pl.String})
    assert typed.schema["qty"] == pl.Int64 and typed.schema["price_total"] == pl.Float64
    parquet_path, jsonl_path = tmp_path / "clicks.parquet", tmp_path / "clicks.jsonl"
    typed.write_parquet(parquet_path)
    jsonl_path.write_text("\n".join(json.dumps(row) for row in typed.iter_rows(named=True)) + "\n")
    return {"csv": csv_path, "parquet": parquet_path, "jsonl": jsonl_path}


def test_mapped_csv_parquet_jsonl_give_identical_canonical_frames(tmp_path):
    results = {
        kind: _clean(read_source("mapped", path, mapping=CLICKSTREAM_MAPPING), date(2017, 11, 26))
        for kind, path in _clickstream_variants(tmp_path).items()
    }
    accepted = results["csv"].accepted
    for kind in ("parquet", "jsonl"):
        assert results[kind].accepted.equals(accepted), kind
        assert (
            results[kind].quarantined["rule"].to_list()
            == results["csv"].quarantined["rule"].to_list()
        )
    assert accepted.schema == pl.Schema(RAW_EVENT_SCHEMA)
    RawEventsModel.validate(accepted)
    assert accepted["event_id"].to_list() == ["c-0001", "c-0002", "c-0003", "c-0004", "c-0005"]
    assert accepted["event_type"].to_list() == ["view", "cart", "purchase", "review", "login"]
    # Europe/Berlin wall-clock times are converted to UTC (CET = UTC+1 in November).
    assert accepted["event_time"][0] == datetime(2017, 11, 26, 8, 0, 5, tzinfo=UTC)
    # c-0005 is 00:30 on the 27th in Berlin, 23:30 UTC on the 26th: it belongs to this day.
    assert accepted["event_time"][4] == datetime(2017, 11, 26, 23, 30, tzinfo=UTC)
    assert accepted["amount"].to_list() == [None, None, 39.8, None, None]
    assert accepted["quantity"].to_list() == [None, 2, 2, None, None]
    assert accepted["rating"].to_list() == [None, None, None, 5, None]
    # The default fills c-0004's empty channel.
    assert accepted["channel"].to_list() == ["SEO", "SEO", "SEO", "Direct", "Ads"]
    assert accepted["ip"][3] == "2001:db8::1"
    # "teleport" is not an event type.
    assert results["csv"].quarantined["rule"].to_list() == ["unknown_event_type"]
    assert "teleport" in results["csv"].quarantined["reason"][0]


def test_mapped_staging_converts_local_times_and_keeps_the_whole_row():
    staged = read_source("mapped", FIXTURES / "clickstream_sample.csv", mapping=CLICKSTREAM_MAPPING)
    assert staged.schema == pl.Schema(STAGED_SCHEMA)
    assert staged["event_time"][4] == "2017-11-26T23:30:00.000000+00:00"
    assert json.loads(staged["raw_record"][0])["campaign"] == "autumn"


def test_mapped_defaults_fill_blank_values_in_every_format(tmp_path):
    path = tmp_path / "clicks.jsonl"
    row = {
        "click_id": "c1",
        "visitor": "v",
        "visit": "s",
        "occurred_at": "26/11/2017 09:00:00",
        "action": "click",
        "sku": None,
        "category": None,
        "merchant": None,
        "price_total": None,
        "qty": None,
        "stars": None,
        "client_ip": None,
        "ua": None,
    }
    path.write_text(
        "\n".join(
            json.dumps({**row, "click_id": f"c{i}", "referrer_type": channel})
            for i, channel in enumerate(["", "  ", None, "Ads"])
        )
    )
    staged = read_source("mapped", path, mapping=CLICKSTREAM_MAPPING)
    assert staged["channel"].to_list() == ["Direct", "Direct", "Direct", "Ads"]


def test_mapped_without_event_id_hashes_content_identically_across_formats(tmp_path):
    document = yaml_document()
    del document["event_id"]
    mapping_path = tmp_path / "no_id.yaml"
    mapping_path.write_text(json.dumps(document))  # JSON is valid YAML
    ids = {
        kind: read_source("mapped", path, mapping=mapping_path)["event_id"].to_list()
        for kind, path in _clickstream_variants(tmp_path).items()
    }
    assert ids["csv"] == ids["parquet"] == ids["jsonl"]
    assert len(set(ids["csv"])) == len(ids["csv"])


def test_example_mapping_loads():
    mapping = load_mapping(CLICKSTREAM_MAPPING)
    assert mapping.time_zone == "Europe/Berlin"
    assert mapping.event_id_column == "click_id"
    assert "occurred_at" in mapping.source_columns


def _broken(change: dict | None = None, drop: tuple[str, ...] = ()) -> dict:
    document = yaml_document()
    for key in drop:
        del document[key]
    for key, value in (change or {}).items():
        document[key] = value
    return document


@pytest.mark.parametrize(
    "document, message",
    [
        (_broken({"renames": {}}), "unknown key(s) ['renames']"),
        (_broken(drop=("timestamp",)), "missing required key 'timestamp'"),
        (
            _broken({"columns": {"visitor": "user_id", "action": "event_type", "x": "colour"}}),
            "'columns' entries ['x'] target unknown column(s)",
        ),
        (
            _broken(
                {"columns": {"visitor": "user_id", "action": "event_type", "ts": "event_time"}}
            ),
            "'columns' entries ['ts'] target unknown column(s)",
        ),
        (
            _broken({"columns": {"visitor": "user_id", "v2": "user_id", "action": "event_type"}}),
            "several source columns onto ['user_id']",
        ),
        (_broken({"columns": {"action": "event_type"}}), "'user_id'"),
        (_broken({"columns": {"visitor": "user_id"}}), "'event_type'"),
        (
            _broken(
                {
                    "timestamp": {
                        "column": "occurred_at",
                        "format": "iso8601",
                        "timezone": "Mars/Olympus",
                    }
                }
            ),
            "'timestamp.timezone' is not a known",
        ),
        (_broken({"timestamp": {"column": "occurred_at", "format": "%Q"}}), "'timestamp.format'"),
        (
            _broken({"timestamp": {"column": "occurred_at", "format": "iso8601", "tz": "UTC"}}),
            "unknown key(s) ['tz'] in 'timestamp'",
        ),
        (_broken({"timestamp": {"format": "iso8601"}}), "'timestamp.column' is required"),
        (
            _broken({"event_types": {"page_view": "pageview"}}),
            "'event_types' entries ['page_view'] map onto unknown event type(s)",
        ),
        (_broken({"event_types": {1: "view"}}), "must map text to text"),
        (_broken({"defaults": {"colour": "red"}}), "'defaults' entries ['colour'] target unknown"),
        (_broken({"event_id": 7}), "'event_id' must name a source column"),
        (["not", "a", "mapping"], "must be a YAML mapping"),
    ],
)
def test_invalid_mappings_are_rejected_with_the_key(document, message):
    with pytest.raises(MappingError, match=r"invalid source mapping my\.yaml") as error:
        parse_mapping(document, origin="my.yaml")
    assert message in str(error.value)


def test_mapping_file_that_is_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("columns: [unclosed")
    with pytest.raises(MappingError, match=r"bad\.yaml: not valid YAML"):
        load_mapping(path)


# --- canonical ---------------------------------------------------------------------------------


def _canonical_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "event_time": [
                datetime(2024, 3, 5, 0, 0, 0, 1, tzinfo=UTC),
                datetime(2024, 3, 5, 12, 30, tzinfo=UTC),
                datetime(2024, 3, 5, 23, 59, 59, 999_999, tzinfo=UTC),
            ],
            "user_id": ["u1", "u1", "u2"],
            "session_id": ["s1", "s1", None],
            "event_type": ["view", "purchase", "review"],
            "item_id": ["i1", "i1", "i2"],
            "category_id": ["c1", "c1", "c2"],
            "shop_id": [None, "sh1", "sh2"],
            "amount": [None, 0.1 + 0.2, None],
            "quantity": [None, 3, None],
            "device_id": ["d1", "d1", "d2"],
            "ip": ["10.1.2.3", "10.1.2.3", "::1"],
            "user_agent": ["UA", "UA", None],
            "channel": ["SEO", "SEO", "Ads"],
            "rating": [None, None, 4],
        },
        schema=RAW_EVENT_SCHEMA,
    )


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_canonical_files_round_trip_losslessly(tmp_path, suffix):
    original = _canonical_frame()
    path = tmp_path / f"events_2024-03-05.{suffix}"
    if suffix == "parquet":
        original.write_parquet(path)
    elif suffix == "csv":
        original.write_csv(path)
    else:
        original.write_ndjson(path)
    staged = read_source("canonical", path)
    assert staged.schema == pl.Schema(STAGED_SCHEMA)
    result = _clean(staged, date(2024, 3, 5))
    assert result.quarantined.height == 0
    assert result.accepted.equals(original)


def test_canonical_parquet_converts_other_time_zones_to_utc(tmp_path):
    frame = _canonical_frame().with_columns(
        pl.col("event_time").dt.convert_time_zone("Asia/Shanghai")
    )
    path = tmp_path / "events.parquet"
    frame.write_parquet(path)
    staged = read_source("canonical", path)
    assert staged["event_time"][1] == "2024-03-05T12:30:00.000000+00:00"
    assert json.loads(staged["raw_record"][1])["user_id"] == "u1"


# --- whole-file failures -----------------------------------------------------------------------


def _write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


CANONICAL_HEADER = "event_id,event_time,user_id,event_type\n"


@pytest.mark.parametrize(
    "source_format, name, content, problem",
    [
        ("canonical", "empty.csv", b"", "empty (0 bytes)"),
        ("taobao", "empty.csv", b"", "empty (0 bytes)"),
        ("canonical", "blank.jsonl", "\n  \n", "only whitespace"),
        ("taobao", "garbage.csv", bytes(range(256)) * 40, "binary data"),
        ("fraud_log", "latin1.csv", "\xe9\xe8\xe0".encode("latin-1") * 500, "binary data"),
        (
            "canonical",
            "text.parquet",
            CANONICAL_HEADER + "e1,2024-01-01T00:00:00Z,u,view\n",
            "not a Parquet file",
        ),
        ("canonical", "truncated.parquet", b"PAR1" + b"\x01" * 40 + b"PAR1", "unreadable Parquet"),
        ("canonical", "wrong.csv", "id,time,user\n1,2,3\n", "lacks column(s) ['event_id'"),
        (
            "canonical",
            "cut.csv",
            CANONICAL_HEADER + "e1,2024-01-01T00:00:00Z,u,vi",
            "the last line is cut",
        ),
        (
            "canonical",
            "extra.csv",
            CANONICAL_HEADER.strip() + ",colour\ne1,t,u,view,red\n",
            "non-canonical column(s) ['colour']",
        ),
        ("taobao", "three_columns.csv", "1,2,3\n4,5,6\n", "has 3 column(s), expected 5"),
        ("taobao", "ragged.csv", "1,2,3,pv,5\n1,2,3,pv,5,6,7\n", "not a readable CSV"),
        (
            "fraud_log",
            "no_ip.csv",
            "user_id,signup_time,purchase_time\n1,2,3\n",
            "lacks column(s) ['purchase_value'",
        ),
        (
            "canonical",
            "bad.jsonl",
            '{"event_id": "e1"}\n\n{"event_id": \n',
            "line 3 is not valid JSON",
        ),
        ("canonical", "array.jsonl", "[1, 2]\n[3, 4]\n", "line 1 is not a JSON object"),
        (
            "canonical",
            "nested.jsonl",
            '{"event_id": "e1", "event_time": "2024-01-01T00:00:00Z", "user_id": {"id": 1}, '
            '"event_type": "view"}\n',
            "column 'user_id' holds nested values",
        ),
        ("canonical", "events.xlsx", "a,b\n", "unsupported file extension '.xlsx'"),
        ("mapped", "clicks.csv", "visitor,action\nv,view\n", "lacks column(s) ['visit'"),
        (
            "canonical",
            "reserved.csv",
            CANONICAL_HEADER.strip() + ",raw_record\ne,t,u,view,x\n",
            "column named 'raw_record'",
        ),
    ],
)
def test_malformed_files_raise_naming_the_file(tmp_path, source_format, name, content, problem):
    path = _write(tmp_path / name, content)
    mapping = CLICKSTREAM_MAPPING if source_format == "mapped" else None
    with pytest.raises(MalformedSourceError) as error:
        read_source(source_format, path, mapping=mapping)
    assert str(path) in str(error.value)
    assert problem in str(error.value)
    assert isinstance(error.value, ValueError)


def test_a_few_bad_bytes_quarantine_rows_not_the_file(tmp_path):
    path = _write(tmp_path / "tb.csv", b"1,10,100,pv,1511658000\n2,1\xff0,100,pv,1511658000\n")
    result = _clean(read_source("taobao", path), date(2017, 11, 26))
    assert result.accepted.height == 1
    assert result.quarantined["rule"].to_list() == ["bad_encoding"]
    assert "item_id" in result.quarantined["reason"][0]


def test_read_source_argument_errors(tmp_path):
    path = _write(tmp_path / "tb.csv", "1,10,100,pv,1511658000\n")
    assert set(SOURCE_FORMATS) == {"canonical", "taobao", "fraud_log", "mapped"}
    with pytest.raises(ValueError, match="unknown source format 'excel'"):
        read_source("excel", path)
    with pytest.raises(ValueError, match="needs a mapping file"):
        read_source("mapped", path)
    with pytest.raises(ValueError, match="takes no mapping file"):
        read_source("taobao", path, mapping=CLICKSTREAM_MAPPING)
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_source("taobao", tmp_path / "missing.csv")
