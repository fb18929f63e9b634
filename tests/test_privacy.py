"""Keyed pseudonyms: the functions, the DuckDB functions, and a scan of the built warehouse."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from dbt_fixtures import TEST_PSEUDONYM_KEY, build_warehouse, dbt_day_vars, run_dbt

from anomaly_pipeline.dbt_plugin import Plugin
from anomaly_pipeline.privacy import (
    DEMO_ENV,
    DEMO_PSEUDONYM_KEY,
    ENV_EXAMPLE_PLACEHOLDER,
    PSEUDONYM_KEY_ENV,
    PseudonymKeyError,
    hmac_sha256_pads,
    ip_network,
    ip_network_keys,
    pseudonym_key,
    pseudonymize,
    pseudonymize_many,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def test_pseudonym_is_truncated_hmac_sha256() -> None:
    expected = hmac.new(KEY, b"user-1", hashlib.sha256).hexdigest()[:32]
    assert pseudonymize("user-1", KEY) == expected
    assert pseudonymize("user-1", KEY) != pseudonymize("user-2", KEY)
    assert pseudonymize("user-1", KEY) != pseudonymize("user-1", OTHER_KEY)


@pytest.mark.parametrize("key", [KEY, b"x" * 64, b"long-key" * 20])
def test_batch_pseudonyms_equal_single_ones(key: bytes) -> None:
    values = ["a", "", "Ünïcode", None, "user-1"]
    assert pseudonymize_many(values, key) == [
        None if value is None else pseudonymize(value, key) for value in values
    ]


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("192.168.5.9", "192.168.5.0/24"),
        (" 10.0.0.255 ", "10.0.0.0/24"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
        ("::ffff:1.2.3.4", "1.2.3.0/24"),
        ("256.1.1.1", None),
        ("010.1.1.1", None),
        ("1.2.3", None),
        ("not-an-ip", None),
        ("", None),
        (None, None),
    ],
)
def test_ip_network(ip: str | None, network: str | None) -> None:
    assert ip_network(ip) == network


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "a-secret-of-enough-length")
    assert pseudonym_key() == b"a-secret-of-enough-length"
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "short")
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        pseudonym_key()


def test_missing_key_is_an_error_unless_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    monkeypatch.delenv(DEMO_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match=PSEUDONYM_KEY_ENV):
        pseudonym_key()
    monkeypatch.setenv(DEMO_ENV, "1")
    assert pseudonym_key() == DEMO_PSEUDONYM_KEY


def test_public_keys_are_refused_outside_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    env_example = (Path(__file__).resolve().parents[1] / "resources" / "env.example").read_text()
    assert f"{PSEUDONYM_KEY_ENV}={ENV_EXAMPLE_PLACEHOLDER.decode()}\n" in env_example
    for public in (DEMO_PSEUDONYM_KEY, ENV_EXAMPLE_PLACEHOLDER):
        monkeypatch.setenv(PSEUDONYM_KEY_ENV, public.decode())
        monkeypatch.delenv(DEMO_ENV, raising=False)
        with pytest.raises(PseudonymKeyError, match="public value") as error:
            pseudonym_key()
        assert public.decode() not in str(error.value)
        monkeypatch.setenv(DEMO_ENV, "1")
        assert pseudonym_key() == public


def _connection_with_udfs(monkeypatch: pytest.MonkeyPatch, key: bytes) -> duckdb.DuckDBPyConnection:
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, key.decode())
    con = duckdb.connect()
    Plugin("dbt_plugin", {}).configure_connection(con)
    return con


def test_udfs_match_the_python_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    con = _connection_with_udfs(monkeypatch, KEY)
    ips = ["10.1.2.3", "bad", None, "2001:db8::1"] * 1500  # several DuckDB vectors
    con.register("ips", pl.DataFrame({"ip": ips}).to_arrow())
    rows = con.sql(
        "select pseudonymize(ip) as key, ip_network_key(ip) as network_key from ips"
    ).pl()
    assert rows["key"].to_list() == pseudonymize_many(ips, KEY)
    assert rows["network_key"].to_list() == ip_network_keys(ips, KEY)
    assert con.sql("select current_setting('TimeZone')").fetchone() == ("UTC",)
    other = _connection_with_udfs(monkeypatch, OTHER_KEY)
    assert (
        other.sql("select pseudonymize('10.1.2.3')").fetchone()
        != con.sql("select pseudonymize('10.1.2.3')").fetchone()
    )


@pytest.mark.parametrize("key", [KEY, b"x" * 64, "long-kéy".encode() * 20])
def test_native_sql_pseudonyms_equal_the_python_ones(
    monkeypatch: pytest.MonkeyPatch,
    key: bytes,
) -> None:
    """The SQL macros (DuckDB's SHA-256 over the HMAC pads) agree with privacy.py on every path:
    keys longer than a SHA-256 block, non-ASCII text, and addresses that the dotted-quad fast path
    must hand to the Python parser (padding, leading zeros, IPv6, IPv4-mapped IPv6)."""
    con = _connection_with_udfs(monkeypatch, key)
    values = [
        "a",
        "",
        "Ünïcode",
        None,
        "user-1",
        "0.0.0.0",
        "255.255.255.255",
        "10.1.2.3",
        " 10.0.0.255 ",
        "1.2.3.4\n",
        "010.1.1.1",
        "1.2.3.04",
        "256.1.1.1",
        "1.2.3",
        "2001:db8:abcd:12::1",
        "::ffff:1.2.3.4",
        "not-an-ip",
    ]
    con.register("ids", pl.DataFrame({"v": values}).to_arrow())
    rows = con.sql("select pseudonymize(v) as key, ip_network_key(v) as network_key from ids").pl()
    assert rows["key"].to_list() == pseudonymize_many(values, key)
    assert rows["network_key"].to_list() == ip_network_keys(values, key)


def test_pseudonym_functions_reach_cursors_but_never_the_database_file(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """dbt runs models on cursors: they get the functions too. The macros hold the key pads, so
    they must stay TEMP: nothing of the key may land in the warehouse file."""
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY.decode())
    plugin = Plugin("dbt_plugin", {})
    database = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(database)) as con:
        plugin.configure_connection(con)
        cursor = con.cursor()
        plugin.configure_cursor(cursor)
        assert cursor.sql(
            "select pseudonymize('user-1'), ip_network_key('10.1.2.3')"
        ).fetchone() == (pseudonymize("user-1", KEY), pseudonymize("10.1.2.0/24", KEY))
        cursor.execute("create table t as select pseudonymize('user-1') as user_key")
        cursor.execute("checkpoint")
    with duckdb.connect(str(database)) as con:
        assert not con.sql(
            "select * from duckdb_functions() where function_name in "
            "('pseudonymize', 'ip_network_key')"
        ).fetchall()
    contents = database.read_bytes()
    assert not any(
        pad in contents or pad.hex().encode() in contents for pad in hmac_sha256_pads(KEY)
    )


DAY1, DAY2 = date(2024, 5, 1), date(2024, 5, 2)
USERS = ("user-alpha", "user-beta", "user-gamma")


def _privacy_events() -> pl.DataFrame:
    """Every user on both days, with device, IPv4/IPv6 address and a session id that embeds
    the user id (as some sources do)."""
    rows = []
    for day_index, day in enumerate((DAY1, DAY2)):
        start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
        for user_index, user in enumerate(USERS):
            for step, event_type in enumerate(("login", "view", "cart", "purchase")):
                rows.append(
                    {
                        "event_id": f"{day}-{user}-{step}",
                        "user_id": user,
                        "event_time": start + timedelta(minutes=7 * user_index + step),
                        "event_type": event_type,
                        "session_id": f"{user}-session-{day_index}",
                        "device_id": f"device-of-{user}",
                        "item_id": "item-1",
                        "ip": f"203.0.113.{user_index + 10}" if user_index else "2001:db8::77",
                        "amount": 9.5 if event_type == "purchase" else None,
                    }
                )
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = build_warehouse(
        tmp_path_factory.mktemp("privacy"),
        _privacy_events(),
        pl.DataFrame(
            {"user_id": ["user-beta"], "event_day": [DAY2], "anomaly_type": ["click_bot"]}
        ),
    )
    for day in (DAY1, DAY2):  # separate runs: pseudonyms must be stable across invocations
        run_dbt(["run", *dbt_day_vars(day, day)], warehouse)
    return warehouse


def test_no_raw_identifier_past_staging(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        raw_values = {
            value
            for (value,) in con.sql("""
                select distinct v from raw.raw_events,
                unnest([user_id, device_id, ip, session_id]) as t(v) where v is not null
            """).fetchall()
        }
        columns = con.sql("""
            select table_schema, table_name, column_name from information_schema.columns
            where table_schema <> 'raw' and data_type = 'VARCHAR'
        """).fetchall()
        tables = {(schema, table) for schema, table, _ in columns}
        assert ("features", "user_day_features") in tables and ("features", "stg_labels") in tables
        leaks = []
        for schema, table, column in columns:
            values = {
                v
                for (v,) in con.sql(
                    f'select distinct "{column}" from "{schema}"."{table}"'
                ).fetchall()
            }
            leaks += [f"{schema}.{table}.{column}={value}" for value in values & raw_values]
    assert len(raw_values) == 15  # 3 users, 3 devices, 3 addresses, 6 sessions
    assert not leaks


def test_same_id_same_pseudonym_across_days_and_tables(warehouse: Path) -> None:
    key = TEST_PSEUDONYM_KEY.encode()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        by_day = con.sql("""
            select event_day, list(distinct user_key order by user_key) as keys
            from features.stg_events group by event_day order by event_day
        """).fetchall()
        label_key = con.sql("select user_key from features.stg_labels").fetchone()
    expected = sorted(pseudonymize(user, key) for user in USERS)
    assert [keys for _, keys in by_day] == [expected, expected]
    assert label_key == (pseudonymize("user-beta", key),)
