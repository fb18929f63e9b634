"""Behaviour simulator: determinism, contracts, anomaly signatures, difficulty, drift, landing."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from anomaly_pipeline.event_contract import LabelsModel, RawEventsModel
from anomaly_pipeline.paths import data_home
from anomaly_pipeline.schema import ANOMALY_TYPES, LABEL_SCHEMA, RAW_EVENT_SCHEMA
from anomaly_pipeline.simulate import (
    Simulation,
    SimulationConfig,
    simulate,
    simulate_day,
    write_landing,
)
from anomaly_pipeline.simulate.__main__ import main

START = date(2026, 11, 1)
SMALL = SimulationConfig(n_days=3, n_users=400, seed=11)
DAY = pl.col("event_time").dt.date().alias("event_day")


def _is(kind: str) -> pl.Expr:
    return (pl.col("event_type") == kind).sum()


def user_days(sim: Simulation) -> pl.DataFrame:
    """Per (user, day) signature statistics, with the label ("normal" when unlabelled)."""
    gap = pl.col("event_time").diff().dt.total_microseconds() / 1e6
    stats = (
        sim.events.sort("user_id", "event_time")
        .with_columns(DAY)
        .group_by("user_id", "event_day")
        .agg(
            n=pl.len(),
            views=_is("view"),
            carts=_is("cart"),
            purchases=_is("purchase"),
            reviews=_is("review"),
            signups=_is("signup"),
            coupons=_is("coupon"),
            items=pl.col("item_id").n_unique(),
            shops=pl.col("shop_id").drop_nulls().n_unique(),
            gap_median=gap.median(),
            gap_cv=gap.std() / gap.mean(),
            extreme=(pl.col("rating").is_in([1, 5])).sum(),
            night=(pl.col("event_time").dt.hour() < 5).mean(),
            missing_session=pl.col("session_id").is_null().mean(),
        )
    )
    return stats.join(sim.labels, on=["user_id", "event_day"], how="left").with_columns(
        pl.col("anomaly_type").fill_null("normal")
    )


def median_of(days: pl.DataFrame, kind: str, column: str) -> float:
    return float(days.filter(pl.col("anomaly_type") == kind)[column].median())


@pytest.fixture(scope="module")
def default_sim() -> Simulation:
    return simulate(SimulationConfig())


@pytest.fixture(scope="module")
def default_days(default_sim: Simulation) -> pl.DataFrame:
    return user_days(default_sim)


@pytest.fixture(scope="module")
def blatant_days() -> pl.DataFrame:
    return user_days(simulate(SimulationConfig(n_days=5, difficulty=0.0)))


@pytest.fixture(scope="module")
def subtle_days() -> pl.DataFrame:
    return user_days(simulate(SimulationConfig(n_days=5, difficulty=1.0)))


# --- determinism ---------------------------------------------------------------------------
def test_same_config_gives_identical_frames_and_days_match_the_window() -> None:
    first, second = simulate(SMALL), simulate(SMALL)
    assert first.events.equals(second.events)
    assert first.labels.equals(second.labels)
    for day in (START, START + timedelta(days=2)):
        one_day = simulate_day(SMALL, day)
        assert one_day.events.equals(first.events.filter(day == DAY))
        assert one_day.labels.equals(first.labels.filter(pl.col("event_day") == day))


def test_different_seed_differs() -> None:
    other = simulate(SimulationConfig(n_days=3, n_users=400, seed=12))
    base = simulate(SMALL)
    assert not base.events.equals(other.events)
    assert not base.labels.equals(other.labels)


# --- contracts -----------------------------------------------------------------------------
def test_frames_satisfy_the_contracts(default_sim: Simulation) -> None:
    events, labels = default_sim.events, default_sim.labels
    assert events.schema == pl.Schema(RAW_EVENT_SCHEMA)
    assert labels.schema == pl.Schema(LABEL_SCHEMA)
    RawEventsModel.validate(events, lazy=True)
    LabelsModel.validate(labels, lazy=True)
    assert events["event_time"].is_sorted()
    assert events.select(DAY.min()).item() == START
    assert events.select(DAY.max()).item() == START + timedelta(days=13)
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert purchases["amount"].null_count() == 0 and (purchases["amount"] > 0).all()
    assert (purchases["quantity"] >= 1).all()
    reviews = events.filter(pl.col("event_type") == "review")
    assert reviews["rating"].null_count() == 0
    assert events.filter(pl.col("event_type") != "review")["rating"].null_count() == (
        events.height - reviews.height
    )


def test_labels_match_the_anomaly_share_and_cover_every_type(
    default_days: pl.DataFrame, default_sim: Simulation
) -> None:
    labels = default_sim.labels
    assert labels.height == pytest.approx(0.03 * default_days.height, rel=0.2)
    assert set(labels["anomaly_type"]) == set(ANOMALY_TYPES)
    # Every labelled user-day has events.
    assert labels.join(default_days, on=["user_id", "event_day"], how="anti").is_empty()
    only_two = simulate(SimulationConfig(n_days=2, anomaly_types=("scraping", "click_bot")))
    assert set(only_two.labels["anomaly_type"]) == {"scraping", "click_bot"}
    assert simulate(SimulationConfig(n_days=2, anomaly_share=0.0)).labels.is_empty()


# --- normal behaviour ----------------------------------------------------------------------
def test_normal_users_follow_a_realistic_funnel(
    default_sim: Simulation, default_days: pl.DataFrame
) -> None:
    normal_users = default_days.filter(pl.col("anomaly_type") == "normal")
    events = default_sim.events.with_columns(DAY).join(
        normal_users.select("user_id", "event_day"), on=["user_id", "event_day"]
    )
    assert events["session_id"].null_count() == 0
    sessions = events.group_by("session_id").agg(
        bought=_is("purchase") > 0,
        start=pl.col("event_time").min(),
        end=pl.col("event_time").max(),
        user_id=pl.first("user_id"),
        event_day=pl.first("event_day"),
    )
    assert 0.02 <= sessions["bought"].mean() <= 0.10  # a few % of sessions convert
    inactivity = (
        sessions.sort("user_id", "start")
        .with_columns(
            gap=(
                pl.col("start") - pl.col("end").shift().over("user_id", "event_day")
            ).dt.total_seconds()
        )["gap"]
        .drop_nulls()
    )
    assert inactivity.min() > 30 * 60  # a new session starts after 30 idle minutes
    dwell = (
        events.sort("session_id", "event_time")
        .select(pl.col("event_time").diff().over("session_id").dt.total_seconds())
        .to_series()
        .drop_nulls()
    )
    assert 5 <= dwell.median() <= 60
    ratings = events.filter(pl.col("event_type") == "review")["rating"]
    assert (ratings >= 4).mean() > 0.7
    # A heavy tail of activity: the busiest user-days are far above the typical one.
    assert normal_users["n"].quantile(0.99) > 5 * normal_users["n"].median()


def test_population_is_persistent_and_some_users_sign_up(
    default_sim: Simulation, default_days: pl.DataFrame
) -> None:
    normal_days = default_days.filter(pl.col("anomaly_type") == "normal").select(
        "user_id", "event_day"
    )
    events = default_sim.events.with_columns(DAY).join(normal_days, on=["user_id", "event_day"])
    per_user = events.group_by("user_id").agg(
        days=pl.col("event_day").n_unique(), devices=pl.col("device_id").n_unique()
    )
    returning = per_user.filter(pl.col("days") >= 3)
    assert returning.height > 200
    assert returning["devices"].median() <= 2  # the same one or two devices
    signups = events.filter(pl.col("event_type") == "signup")
    assert 5 <= signups.height <= 200
    first_purchase = (
        events.filter(pl.col("event_type") == "purchase")
        .group_by("user_id")
        .agg(first=pl.col("event_time").min())
    )
    delays = (
        signups.join(first_purchase, on="user_id")
        .select((pl.col("first") - pl.col("event_time")).dt.total_seconds())
        .to_series()
    )
    assert (delays > 600).all()  # legit signups buy later


# --- anomaly signatures --------------------------------------------------------------------
def test_click_bots_are_fast_regular_and_never_buy(default_days: pl.DataFrame) -> None:
    bots = default_days.filter(pl.col("anomaly_type") == "click_bot")
    assert median_of(default_days, "click_bot", "gap_median") < 0.5 * median_of(
        default_days, "normal", "gap_median"
    )
    assert median_of(default_days, "click_bot", "gap_cv") < 0.25 * median_of(
        default_days, "normal", "gap_cv"
    )
    assert bots["purchases"].sum() == 0
    assert median_of(default_days, "click_bot", "n") > 10 * median_of(default_days, "normal", "n")


def test_scrapers_view_far_more_distinct_items(default_days: pl.DataFrame) -> None:
    scrapers = default_days.filter(pl.col("anomaly_type") == "scraping")
    assert median_of(default_days, "scraping", "items") > 20 * median_of(
        default_days, "normal", "items"
    )
    assert scrapers["carts"].sum() == 0 and scrapers["purchases"].sum() == 0


def test_takeover_days_use_a_new_device_and_network(default_sim: Simulation) -> None:
    events = default_sim.events.with_columns(DAY, network=pl.col("ip").str.replace(r"\.\d+$", ""))
    takeovers = default_sim.labels.filter(pl.col("anomaly_type") == "account_takeover")
    for user_id, day in takeovers.select("user_id", "event_day").iter_rows():
        mine = events.filter(pl.col("user_id") == user_id)
        before = mine.filter(pl.col("event_day") < day)
        today = mine.filter(pl.col("event_day") == day)
        assert set(today["device_id"].drop_nulls()) - set(before["device_id"].drop_nulls())
        assert set(today["network"].drop_nulls()) - set(before["network"].drop_nulls())
        assert today.filter(pl.col("event_type") == "purchase").height >= 1


def test_brushing_rings_share_devices_and_buy_from_one_shop(
    default_sim: Simulation, default_days: pl.DataFrame
) -> None:
    ring_days = default_sim.labels.filter(pl.col("anomaly_type") == "order_brushing")
    events = default_sim.events.with_columns(DAY).join(
        ring_days.select("user_id", "event_day"), on=["user_id", "event_day"]
    )
    shared = events.group_by("event_day", "device_id").agg(users=pl.col("user_id").n_unique())[
        "users"
    ]
    assert shared.max() >= 3
    purchases = events.filter(pl.col("event_type") == "purchase")
    assert (
        purchases["amount"].median()
        < default_sim.events.filter(pl.col("event_type") == "purchase")["amount"].median()
    )
    assert (
        median_of(default_days, "order_brushing", "views")
        / max(median_of(default_days, "order_brushing", "purchases"), 1)
        < 10
    )
    assert (events.filter(pl.col("event_type") == "review")["rating"] == 5).mean() > 0.8


def test_fake_reviews_come_without_purchases_and_with_extreme_ratings(
    default_days: pl.DataFrame,
) -> None:
    fakes = default_days.filter(pl.col("anomaly_type") == "fake_review")
    assert (fakes["purchases"] == 0).all()
    assert (fakes["reviews"] >= 1).all()
    assert fakes["extreme"].sum() / fakes["reviews"].sum() > 0.7
    assert median_of(default_days, "fake_review", "reviews") >= 3


def test_coupon_abusers_are_fresh_shared_and_buy_seconds_after_signup(
    default_sim: Simulation,
) -> None:
    abuse = default_sim.labels.filter(pl.col("anomaly_type") == "coupon_abuse")
    events = default_sim.events.with_columns(DAY).join(
        abuse.select("user_id", "event_day"), on=["user_id", "event_day"]
    )
    per_user = events.group_by("user_id").agg(
        signup=pl.col("event_time").filter(pl.col("event_type") == "signup").min(),
        purchase=pl.col("event_time").filter(pl.col("event_type") == "purchase").min(),
        coupons=_is("coupon"),
    )
    assert per_user["signup"].null_count() == 0 and (per_user["coupons"] >= 1).all()
    delay = (per_user["purchase"] - per_user["signup"]).dt.total_seconds()
    assert delay.median() < 600
    # Fresh accounts: none of them appears on any other day.
    assert (
        default_sim.events.filter(pl.col("user_id").is_in(abuse["user_id"].implode()))
        .select(DAY.n_unique())
        .item()
        == abuse["event_day"].n_unique()
    )
    assert events.group_by("device_id").agg(pl.col("user_id").n_unique())["user_id"].max() >= 2


def test_difficulty_one_weakens_every_signature(
    blatant_days: pl.DataFrame, subtle_days: pl.DataFrame
) -> None:
    def ratio(kind: str, column: str, days: pl.DataFrame) -> float:
        return median_of(days, kind, column) / median_of(days, "normal", column)

    # Bots become irregular and scrapers browse like people.
    assert ratio("click_bot", "gap_cv", subtle_days) > 3 * ratio(
        "click_bot", "gap_cv", blatant_days
    )
    assert ratio("scraping", "items", subtle_days) < 0.1 * ratio("scraping", "items", blatant_days)
    assert median_of(subtle_days, "click_bot", "missing_session") == 0.0
    assert median_of(blatant_days, "click_bot", "missing_session") == 1.0
    # Fake reviewers write a single, ordinary review; brushing rings browse before buying.
    assert median_of(subtle_days, "fake_review", "reviews") < median_of(
        blatant_days, "fake_review", "reviews"
    )
    assert median_of(subtle_days, "order_brushing", "views") > 3 * median_of(
        blatant_days, "order_brushing", "views"
    )
    # Takeovers buy less, coupon abusers browse more.
    assert median_of(subtle_days, "account_takeover", "purchases") < median_of(
        blatant_days, "account_takeover", "purchases"
    )
    assert median_of(subtle_days, "coupon_abuse", "views") > median_of(
        blatant_days, "coupon_abuse", "views"
    )
    # Normal users are untouched by the difficulty knob.
    normal = pl.col("anomaly_type") == "normal"
    assert subtle_days.filter(normal).height == blatant_days.filter(normal).height


def test_difficulty_by_type_overrides_the_global_difficulty() -> None:
    days = user_days(
        simulate(SimulationConfig(n_days=4, difficulty=0.0, difficulty_by_type={"click_bot": 1.0}))
    )
    assert median_of(days, "click_bot", "gap_cv") > 0.5
    assert median_of(days, "scraping", "items") > 1000


# --- drift ---------------------------------------------------------------------------------
def test_drift_shortens_gaps_and_adds_the_channel_only_from_drift_from() -> None:
    drift_from = START + timedelta(days=2)
    base = simulate(SimulationConfig(n_days=4, n_users=800))
    drifted = simulate(
        SimulationConfig(
            n_days=4,
            n_users=800,
            drift_from=drift_from,
            drift_dwell_factor=0.5,
            drift_new_channel="AppStore",
        )
    )
    before, after = drift_from > DAY, drift_from <= DAY
    assert drifted.events.filter(before).equals(base.events.filter(before))
    assert "AppStore" not in set(drifted.events.filter(before)["channel"].drop_nulls())
    sessions = drifted.events.filter(after).group_by("session_id").agg(channel=pl.first("channel"))
    assert 0.1 < (sessions["channel"] == "AppStore").mean() < 0.5

    def dwell(sim: Simulation) -> float:
        normal = (
            sim.events.filter(after)
            .with_columns(DAY)
            .join(sim.labels, on=["user_id", "event_day"], how="anti")
        )
        return (
            normal.sort("session_id", "event_time")
            .select(pl.col("event_time").diff().over("session_id").dt.total_seconds())
            .to_series()
            .drop_nulls()
            .median()
        )

    assert dwell(drifted) == pytest.approx(0.5 * dwell(base), rel=0.15)


# --- configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"anomaly_share": 1.5}, "anomaly_share"),
        ({"anomaly_types": ("phishing",)}, "anomaly_types"),
        ({"difficulty": -0.1}, "difficulty"),
        ({"difficulty_by_type": {"scraping": 2.0}}, "difficulty_by_type"),
        ({"n_days": 0}, "n_days"),
        ({"drift_dwell_factor": 0.0}, "drift_dwell_factor"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"SimulationConfig.{field}"):
        SimulationConfig(**kwargs)


def test_day_outside_the_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside the simulated window"):
        simulate_day(SMALL, START - timedelta(days=1))


# --- landing -------------------------------------------------------------------------------
def test_write_landing_writes_one_file_per_day_and_rewrites_idempotently(tmp_path: Path) -> None:
    sim = simulate(SimulationConfig(n_days=3, n_users=300, anomaly_share=0.0))
    events_dir, labels_dir = tmp_path / "events", tmp_path / "labels"
    paths = write_landing(sim, events_dir, labels_dir)
    expected = [f"events_{START + timedelta(days=i)}.parquet" for i in range(3)]
    assert sorted(p.name for p in events_dir.iterdir()) == expected
    assert sorted(p.name for p in labels_dir.iterdir()) == [
        name.replace("events", "labels") for name in expected
    ]
    assert len(paths) == 6
    day_one = pl.read_parquet(events_dir / expected[0])
    assert day_one.equals(sim.events.filter(DAY == START))
    empty = pl.read_parquet(labels_dir / "labels_2026-11-01.parquet")
    assert empty.is_empty() and empty.schema == pl.Schema(LABEL_SCHEMA)

    contents = {p: p.read_bytes() for p in paths}
    assert write_landing(sim, events_dir, labels_dir) == paths
    assert {p: p.read_bytes() for p in paths} == contents
    assert len(list(tmp_path.rglob("*"))) == 2 + 6  # no temporary files left


def test_command_line_writes_into_the_data_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "--start",
                "2026-11-05",
                "--days",
                "2",
                "--users",
                "200",
                "--seed",
                "3",
                "--drift-from",
                "2026-11-06",
                "--home",
                str(tmp_path),
            ]
        )
        == 0
    )
    home = data_home(tmp_path)
    assert sorted(p.name for p in home.landing_events.iterdir()) == [
        "events_2026-11-05.parquet",
        "events_2026-11-06.parquet",
    ]
    assert len(list(home.landing_labels.iterdir())) == 2
    assert "simulated" in capsys.readouterr().out
    assert main(["--users", "0", "--home", str(tmp_path)]) == 2


# --- speed ---------------------------------------------------------------------------------
def test_a_million_events_simulate_well_under_thirty_seconds() -> None:
    began = time.perf_counter()
    sim = simulate(SimulationConfig(n_users=50_000, n_days=2))
    elapsed = time.perf_counter() - began
    assert sim.events.height >= 1_000_000
    assert elapsed < 15
