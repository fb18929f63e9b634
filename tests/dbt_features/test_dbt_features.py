"""The dbt feature project on a tiny hand-made warehouse: features equal hand-computed values.

Three users over two days (2024-03-01, 2024-03-02). One module-scoped ``dbt build`` of both days,
then assertions; two more invocations check reruns (the same range, and day 2 alone, whose
history must then come from the already-built day 1).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandera.errors
import polars as pl
import pytest

from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, KEY_COLUMNS, validate_features
from anomaly_pipeline.features.catalogue import NO_ACCOUNT_AGE_DAYS, NO_PURCHASE_DELAY_S
from anomaly_pipeline.privacy import pseudonymize
from dbt_fixtures import (
    FEATURE_MODELS,
    TEST_PSEUDONYM_KEY,
    build_warehouse,
    dbt_day_vars,
    run_dbt,
)

DAY1 = date(2024, 3, 1)
DAY2 = date(2024, 3, 2)
KEY = TEST_PSEUDONYM_KEY.encode()


def _event(
    event_id: str,
    user: str,
    day: date,
    hms: str,
    event_type: str,
    *,
    item: str | None = None,
    category: str | None = None,
    amount: float | None = None,
    rating: int | None = None,
    device: str | None = None,
    ip: str | None = None,
) -> dict[str, object]:
    hour, minute, second = (int(part) for part in hms.split(":"))
    return {
        "event_id": event_id,
        "user_id": user,
        "event_type": event_type,
        "event_time": datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC),
        "item_id": item,
        "category_id": category,
        "shop_id": "shop-1" if item else None,
        "amount": amount,
        "rating": rating,
        "device_id": device,
        "ip": ip,
    }


def fixture_events() -> pl.DataFrame:
    """The hand-made log; the comments give what each user-day should yield."""
    a = dict(device="dev-A1", ip="10.0.0.1")
    a2 = dict(device="dev-A2", ip="10.0.0.7")  # day 2: new device, same /24 network
    b = dict(device="dev-A1", ip="192.168.5.9")  # bob shares alice's day-1 device
    b2 = dict(device="dev-B2", ip="192.168.5.10")
    c = dict(device="dev-A2", ip="172.16.0.3")  # carol shares alice's day-2 device
    rows = [
        # alice, day 1: sessions [01:00:00-01:02:00] and [09:00:00-09:10:00]
        _event("a01", "alice", DAY1, "01:00:00", "view", item="i1", category="c1", **a),
        _event("a02", "alice", DAY1, "01:00:30", "view", item="i2", category="c1", **a),
        _event("a03", "alice", DAY1, "01:01:30", "cart", item="i2", category="c1", **a),
        _event(
            "a04", "alice", DAY1, "01:02:00", "purchase", item="i2", category="c1", amount=20.0, **a
        ),
        _event("a05", "alice", DAY1, "09:00:00", "view", item="i3", category="c2", **a),
        _event("a06", "alice", DAY1, "09:10:00", "view", item="i3", category="c2", **a),
        # alice, day 2: 12:00:00-12:05:00, then 2101 s of silence (> 30 min) before the review
        _event("a07", "alice", DAY2, "12:00:00", "login", **a2),
        _event("a08", "alice", DAY2, "12:00:10", "view", item="i1", category="c1", **a2),
        _event("a09", "alice", DAY2, "12:00:40", "view", item="i4", category="c3", **a2),
        _event(
            "a10",
            "alice",
            DAY2,
            "12:05:00",
            "purchase",
            item="i4",
            category="c3",
            amount=30.0,
            **a2,
        ),
        _event(
            "a11", "alice", DAY2, "12:40:01", "review", item="i4", category="c3", rating=5, **a2
        ),
        # bob, day 1: signs up, buys 20 minutes later; review 40 minutes after that
        _event("b01", "bob", DAY1, "02:00:00", "signup", **b),
        _event("b02", "bob", DAY1, "02:10:00", "view", item="i1", category="c1", **b),
        _event(
            "b03", "bob", DAY1, "02:20:00", "purchase", item="i1", category="c1", amount=15.0, **b
        ),
        _event("b04", "bob", DAY1, "03:00:00", "review", item="i1", category="c1", rating=1, **b),
        # bob, day 2 (b05 is delivered twice, see below)
        _event("b05", "bob", DAY2, "23:00:00", "view", item="i5", category="c5", **b2),
        _event("b06", "bob", DAY2, "23:00:05", "view", item="i5", category="c5", **b2),
        _event("b07", "bob", DAY2, "23:00:20", "cart", item="i5", category="c5", **b2),
        # carol, day 2 only
        _event("c01", "carol", DAY2, "12:01:00", "search", **c),
        _event("c02", "carol", DAY2, "12:01:03", "view", item="i1", category="c1", **c),
        _event("c03", "carol", DAY2, "12:01:04", "click", item="i1", category="c1", **c),
    ]
    duplicate = dict(rows[15])
    return pl.DataFrame([*rows, duplicate], infer_schema_length=None)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = build_warehouse(tmp_path_factory.mktemp("dbt_features"), fixture_events())
    run_dbt(["build", *dbt_day_vars(DAY1, DAY2)], warehouse)
    return warehouse


def _query(warehouse: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql(sql).pl()


@pytest.fixture(scope="module")
def features(warehouse: Path) -> pl.DataFrame:
    return _query(warehouse, "select * from features.user_day_features order by all")


def _row(features: pl.DataFrame, user: str, day: date) -> dict[str, object]:
    rows = features.filter(
        (pl.col("user_key") == pseudonymize(user, KEY)) & (pl.col("event_day") == day)
    ).to_dicts()
    assert len(rows) == 1, f"expected one row for {user} on {day}, got {len(rows)}"
    return rows[0]


def _population_stats(gaps: list[float]) -> tuple[float, float]:
    mean = sum(gaps) / len(gaps)
    return mean, math.sqrt(sum((gap - mean) ** 2 for gap in gaps) / len(gaps))


def test_models_are_relations_of_the_features_schema(warehouse: Path) -> None:
    tables = _query(warehouse, "select table_schema, table_name from information_schema.tables")
    in_features = set(tables.filter(pl.col("table_schema") == "features")["table_name"])
    assert set(FEATURE_MODELS) <= in_features
    assert not tables.filter(pl.col("table_schema").str.starts_with("main_")).height


def test_mart_has_exactly_the_contract_columns(features: pl.DataFrame) -> None:
    assert tuple(features.columns) == KEY_COLUMNS + FEATURE_COLUMNS


def test_one_row_per_active_user_day(features: pl.DataFrame) -> None:
    assert features.height == 5  # alice ×2, bob ×2, carol ×1


def test_duplicate_delivery_is_deduplicated(warehouse: Path, features: pl.DataFrame) -> None:
    assert _query(warehouse, "select count(*) as n from features.stg_events")["n"][0] == 21
    assert _row(features, "bob", DAY2)["n_views"] == 2


def test_counts_and_rates(features: pl.DataFrame) -> None:
    alice1 = _row(features, "alice", DAY1)
    assert (alice1["n_events"], alice1["n_views"], alice1["n_carts"], alice1["n_purchases"]) == (
        6,
        4,
        1,
        1,
    )
    assert alice1["cart_or_buy_per_view"] == pytest.approx(2 / 4)
    assert alice1["cart_to_purchase_rate"] == pytest.approx(1.0)
    assert (alice1["distinct_items"], alice1["distinct_categories"]) == (3, 2)
    assert alice1["purchase_amount_sum"] == alice1["purchase_amount_mean"] == 20.0
    carol = _row(features, "carol", DAY2)
    assert (carol["n_searches"], carol["n_views"], carol["n_clicks"]) == (1, 1, 1)
    alice2 = _row(features, "alice", DAY2)
    assert (alice2["n_logins"], alice2["n_reviews"], alice2["rating_mean"]) == (1, 1, 5.0)
    assert alice2["extreme_rating_share"] == 1.0


def test_sessions_split_by_the_30_minute_gap(warehouse: Path, features: pl.DataFrame) -> None:
    alice1 = _row(features, "alice", DAY1)
    assert alice1["n_sessions"] == 2
    assert alice1["max_views_per_session"] == 2
    assert alice1["views_per_session"] == pytest.approx(4 / 2)
    assert alice1["session_duration_mean_s"] == pytest.approx((120 + 600) / 2)
    # each session counts at least a minute: 4 views over (2 + 10) minutes
    assert alice1["views_per_active_minute"] == pytest.approx(4 / 12)
    assert _row(features, "alice", DAY2)["n_sessions"] == 2  # 2101 s > 1800 s splits the review
    assert _row(features, "bob", DAY1)["n_sessions"] == 2  # 2400 s before the review
    assert _row(features, "carol", DAY2)["n_sessions"] == 1
    sessions = _query(
        warehouse,
        f"""
        select session_index, n_events, n_views, duration_s, gap_before_s
        from features.int_sessions
        where user_key = '{pseudonymize("alice", KEY)}' and event_day = date '{DAY1}'
        order by session_index""",
    )
    assert sessions.rows() == [(1, 4, 2, 120.0, None), (2, 2, 2, 600.0, 28680.0)]


def test_dwell_and_interval_statistics(features: pl.DataFrame) -> None:
    alice1 = _row(features, "alice", DAY1)
    # a view's dwell is the time to the next event of the same session; the last view has none
    assert alice1["dwell_mean_s"] == pytest.approx((30 + 60 + 600) / 3)
    gaps = [30.0, 60.0, 30.0, 28680.0, 600.0]
    mean, std = _population_stats(gaps)
    assert alice1["interval_mean_s"] == pytest.approx(mean)
    assert alice1["interval_std_s"] == pytest.approx(std)
    assert alice1["interval_cv"] == pytest.approx(std / mean)
    assert alice1["interval_min_s"] == 30.0
    carol = _row(features, "carol", DAY2)
    assert (carol["interval_min_s"], carol["interval_mean_s"]) == (1.0, 2.0)


def test_night_share_and_purchase_delay(features: pl.DataFrame) -> None:
    assert _row(features, "alice", DAY1)["night_share"] == pytest.approx(4 / 6)
    assert _row(features, "alice", DAY2)["night_share"] == 0.0
    bob1 = _row(features, "bob", DAY1)
    assert bob1["night_share"] == 1.0
    assert bob1["first_purchase_delay_s"] == 1200.0
    assert (
        _row(features, "alice", DAY1)["first_purchase_delay_s"] == NO_PURCHASE_DELAY_S
    )  # no signup


def test_account_features_read_the_signup_of_an_earlier_day(features: pl.DataFrame) -> None:
    assert _row(features, "bob", DAY1)["account_age_days"] == 0  # signed up that day
    bob2 = _row(features, "bob", DAY2)
    assert bob2["account_age_days"] == 1  # the day-1 signup, read from the built history
    assert bob2["first_purchase_delay_s"] == NO_PURCHASE_DELAY_S  # no purchase on day 2
    for user, day in (("alice", DAY1), ("alice", DAY2), ("carol", DAY2)):  # never signed up
        assert _row(features, user, day)["account_age_days"] == NO_ACCOUNT_AGE_DAYS


def test_users_per_device_hour(features: pl.DataFrame) -> None:
    # dev-A1: alice at 01:00 and 09:00, bob at 02:00-03:00 of day 1: never two within an hour
    assert _row(features, "alice", DAY1)["users_per_device_hour"] == 1
    # dev-A2 on day 2: alice at 12:00-12:40 and carol at 12:01
    assert _row(features, "alice", DAY2)["users_per_device_hour"] == 2
    assert _row(features, "carol", DAY2)["users_per_device_hour"] == 2


def test_device_and_network_sharing(features: pl.DataFrame) -> None:
    alice1 = _row(features, "alice", DAY1)
    assert (alice1["distinct_devices"], alice1["distinct_ips"], alice1["distinct_ip_networks"]) == (
        1,
        1,
        1,
    )
    assert alice1["users_per_device_day"] == 2  # dev-A1: alice and bob
    assert alice1["users_per_ip_network_day"] == 1
    alice2 = _row(features, "alice", DAY2)
    assert alice2["users_per_device_day"] == 2  # dev-A2: alice and carol
    assert alice2["users_per_device_window"] == 2
    assert alice2["users_per_ip_network_window"] == 1  # 10.0.0.0/24, alice on both days
    bob2 = _row(features, "bob", DAY2)
    assert (bob2["users_per_device_day"], bob2["users_per_device_window"]) == (1, 1)


def test_history_features(features: pl.DataFrame) -> None:
    alice2 = _row(features, "alice", DAY2)
    assert alice2["history_days"] == 1
    assert alice2["events_vs_7d_median"] == pytest.approx((5 + 1) / (6 + 1))
    assert alice2["views_vs_7d_median"] == pytest.approx((2 + 1) / (4 + 1))
    assert alice2["purchases_vs_7d_median"] == pytest.approx((1 + 1) / (1 + 1))
    assert (alice2["new_device"], alice2["new_ip_network"]) == (1, 0)
    bob2 = _row(features, "bob", DAY2)
    assert (bob2["new_device"], bob2["new_ip_network"]) == (1, 0)
    for user, day in (("alice", DAY1), ("carol", DAY2)):  # no history: neutral values
        row = _row(features, user, day)
        assert (row["history_days"], row["events_vs_7d_median"], row["new_device"]) == (0, 1, 0)


def test_dbt_tests_ran_and_passed(warehouse: Path) -> None:
    run_results = json.loads((warehouse.parent / "dbt" / "target" / "run_results.json").read_text())
    tests = [r for r in run_results["results"] if r["unique_id"].startswith("test.")]
    assert len(tests) >= 20
    assert {r["status"] for r in tests} == {"pass"}
    assert any("accepted_values_stg_events_event_type" in r["unique_id"] for r in tests)


def test_contract_accepts_the_mart(features: pl.DataFrame) -> None:
    assert validate_features(features).equals(features)


def test_contract_rejects_a_corrupted_frame_with_a_readable_report(
    features: pl.DataFrame,
) -> None:
    corrupted = pl.concat([features, features.head(1)]).with_columns(
        n_views=pl.lit(-1.0),
        night_share=pl.when(pl.col("n_events") == 6).then(None).otherwise(pl.col("night_share")),
        new_device=pl.lit(0.5),
    )
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        validate_features(corrupted)
    report = str(raised.value)
    for fragment in (
        "n_views",
        "greater_than_or_equal_to(0)",
        "night_share",
        "null",
        "new_device",
        "isin",
        "user_key",
    ):
        assert fragment in report, fragment


def test_contract_rejects_non_finite_features(features: pl.DataFrame) -> None:
    """An amount sum that overflowed to inf (or a NaN ratio) must never reach a model: ge=0
    alone lets inf through."""
    poisoned = features.with_columns(
        purchase_amount_sum=pl.when(pl.int_range(pl.len()) == 0)
        .then(float("inf"))
        .otherwise(pl.col("purchase_amount_sum")),
        interval_cv=pl.when(pl.int_range(pl.len()) == 1)
        .then(float("nan"))
        .otherwise(pl.col("interval_cv")),
    )
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        validate_features(poisoned)
    failures = raised.value.failure_cases.filter(pl.col("check") == "finite")
    assert sorted(failures["column"].to_list()) == ["interval_cv", "purchase_amount_sum"]


def test_rerunning_the_same_range_changes_nothing(
    warehouse: Path,
    features: pl.DataFrame,
) -> None:
    before = {
        model: _query(warehouse, f"select count(*) as n from features.{model}")["n"][0]
        for model in FEATURE_MODELS
    }
    run_dbt(["run", *dbt_day_vars(DAY1, DAY2)], warehouse)
    after = {
        model: _query(warehouse, f"select count(*) as n from features.{model}")["n"][0]
        for model in FEATURE_MODELS
    }
    assert after == before
    assert _query(warehouse, "select * from features.user_day_features order by all").equals(
        features
    )


def test_a_later_day_alone_reads_its_history_from_built_tables(
    warehouse: Path,
    features: pl.DataFrame,
) -> None:
    run_dbt(["run", *dbt_day_vars(DAY2, DAY2)], warehouse)
    rebuilt = _query(warehouse, "select * from features.user_day_features order by all")
    assert rebuilt.equals(features)


def test_a_schema_change_fails_the_run_and_keeps_the_rows(
    tmp_path: Path,
) -> None:
    """The day_partitions materialization refuses to insert into a table whose columns differ
    from the model's, and the failed run leaves the table's rows in place."""
    warehouse = build_warehouse(tmp_path, fixture_events())
    day1 = [*dbt_day_vars(DAY1, DAY1), "--select", "stg_events"]
    run_dbt(["run", *day1], warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("alter table features.stg_events add column extra integer")
        before = con.sql("select count(*) from features.stg_events").fetchone()
    result = run_dbt(["run", *day1], warehouse, check=False)
    assert result.returncode != 0
    assert "differ from the table's" in result.stdout and "--full-refresh" in result.stdout
    assert _query(warehouse, "select count(*) as n from features.stg_events")["n"][0] == before[0]


def test_night_share_follows_the_source_timezone(tmp_path: Path) -> None:
    """Partitions stay UTC days; the hour is the source's local hour (New York: UTC-5 in March
    2024, before daylight saving)."""
    warehouse = build_warehouse(tmp_path, fixture_events())
    local = [
        "--vars",
        json.dumps(
            {
                "start_day": DAY1.isoformat(),
                "end_day": DAY2.isoformat(),
                "source_timezone": "America/New_York",
            }
        ),
    ]
    run_dbt(["run", "--select", "+user_day_features", *local], warehouse)
    features = _query(warehouse, "select * from features.user_day_features order by all")
    # alice's 01:00 UTC events are 20:00 the evening before; her 09:00 / 09:10 UTC are 04:00 local
    assert _row(features, "alice", DAY1)["night_share"] == pytest.approx(2 / 6)
    # bob's 02:00–03:00 UTC (night in UTC) is 21:00–22:00 local; the UTC day stays his partition
    assert _row(features, "bob", DAY1)["night_share"] == 0.0
    assert features["event_day"].unique().sort().to_list() == [DAY1, DAY2]

    bad = [
        "--vars",
        json.dumps(
            {
                "start_day": DAY1.isoformat(),
                "end_day": DAY1.isoformat(),
                "source_timezone": "UTC'; drop table x; --",
            }
        ),
    ]
    result = run_dbt(["run", "--select", "user_day_features", *bad], warehouse, check=False)
    assert result.returncode != 0
    assert "source_timezone must be an IANA timezone name" in result.stdout


def test_dbt_unit_tests_pass_on_duckdb(warehouse: Path) -> None:
    """The given/expect unit tests (int_sessions, account features, hourly sharing,
    night_share) run through the real dbt on DuckDB (the pipeline's build leaves them to the
    tests: ``DBT_BUILD``)."""
    run_dbt(["test", "--select", "test_type:unit"], warehouse)
    run_results = json.loads((warehouse.parent / "dbt" / "target" / "run_results.json").read_text())
    statuses = {  # (the on-run-start hook, a no-op on DuckDB, is a result too)
        r["unique_id"].rsplit(".", 1)[-1]: r["status"]
        for r in run_results["results"]
        if r["unique_id"].startswith("unit_test.")
    }
    assert statuses == {
        "sessions_split_at_the_inactivity_gap": "pass",
        "first_purchase_delay_is_clipped_and_never_without_a_signup": "pass",
        "account_features_read_signups_of_earlier_days_in_the_window_only": "pass",
        "users_per_device_hour_counts_accounts_within_one_hour": "pass",
        "night_share_counts_events_before_five_local": "pass",
    }


def test_dbt_tests_read_only_the_run_s_day_range(tmp_path: Path) -> None:
    """A run tests the days it builds (macros/test_partition_range.sql): a bad row of another
    day fails that day's run, not this one, so a test's cost does not grow with the history."""
    warehouse = build_warehouse(tmp_path, fixture_events())
    day0 = date(2024, 2, 29)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "insert into raw.raw_events select * replace ('bad' as event_id, null as user_id,"
            " ? as event_day) from raw.raw_events limit 1",
            [day0],
        )
    source_tests = ["test", "--select", "source:raw.raw_events"]
    run_dbt([*source_tests, *dbt_day_vars(DAY1, DAY2)], warehouse)

    failed = run_dbt([*source_tests, *dbt_day_vars(day0, day0)], warehouse, check=False)
    assert failed.returncode != 0
    results = json.loads((warehouse.parent / "dbt" / "target" / "run_results.json").read_text())
    failures = {r["unique_id"].split(".")[2]: r["failures"] for r in results["results"]}
    assert failures.pop("source_not_null_raw_raw_events_user_id") == 1
    assert set(failures.values()) == {0}
