"""Drift statistics: PSI, KS, unseen categories, the verdict and the plot."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from anomaly_pipeline.drift import (
    DRIFT_SCHEMA,
    DriftThresholds,
    assess,
    categorical_drift,
    day_feature_drift,
    drift_figure,
    feature_drift,
    flag_drifted,
    plot_drift,
    psi,
    score_drift,
    unseen_categories,
)
from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, HISTORY_FEATURES


@pytest.fixture(scope="module")
def frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(0)
    n_ref, n_cur = 5000, 1500
    reference = pl.DataFrame(
        {
            "stable": rng.normal(0, 1, n_ref),
            "shifted": rng.normal(0, 1, n_ref),
            "halved": rng.lognormal(3, 0.5, n_ref),
            "rare_count": rng.poisson(0.1, n_ref) * 1.0,
        }
    )
    current = pl.DataFrame(
        {
            "stable": rng.normal(0, 1, n_cur),
            "shifted": rng.normal(1.0, 1, n_cur),
            "halved": rng.lognormal(3, 0.5, n_cur) * 0.5,
            "rare_count": rng.poisson(0.1, n_cur) * 1.0,
        }
    )
    return reference, current


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 10_000)
    assert psi(ref, rng.normal(0, 1, 10_000)) < 0.01
    assert psi(ref, rng.normal(1, 1, 10_000)) > 0.5
    # hand-checked: half the mass moves from the lower to the upper bin of a 0/1 feature
    zeros_ones = np.array([0.0] * 75 + [1.0] * 25)
    moved = np.array([0.0] * 25 + [1.0] * 75)
    expected = (0.75 - 0.25) * np.log(0.75 / 0.25) + (0.25 - 0.75) * np.log(0.25 / 0.75)
    assert psi(zeros_ones, moved) == pytest.approx(expected, rel=1e-3)


def test_psi_stays_finite_when_current_fills_an_empty_bin() -> None:
    value = psi(np.zeros(100), np.full(50, 7.0))
    assert np.isfinite(value) and value > 5


def test_feature_drift_table(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, current = frames
    table = feature_drift(reference, current, ["stable", "shifted", "halved", "rare_count"])
    assert table.schema == pl.Schema(DRIFT_SCHEMA)
    assert set(table["feature"].head(2)) == {"shifted", "halved"}  # most drifted first
    assert table["psi"].to_list() == sorted(table["psi"].to_list(), reverse=True)
    row = table.filter(pl.col("feature") == "shifted").row(0, named=True)
    ks = stats.ks_2samp(reference["shifted"].to_numpy(), current["shifted"].to_numpy())
    assert row["ks_stat"] == pytest.approx(ks.statistic)
    assert row["ks_pvalue"] == pytest.approx(ks.pvalue)
    assert row["cur_mean"] == pytest.approx(current["shifted"].mean())
    assert (row["ref_n"], row["cur_n"]) == (5000, 1500)
    stable = table.filter(pl.col("feature") == "stable").row(0, named=True)
    assert stable["psi"] < 0.05 and stable["ks_stat"] < 0.05


def test_unseen_categories_and_channel_mix() -> None:
    row = categorical_drift(
        "channel", ["SEO"] * 50 + ["Ads"] * 50, ["SEO"] * 40 + ["Ads"] * 40 + ["AppStore"] * 20
    )
    assert row["unseen_share"] == pytest.approx(0.2)
    assert row["psi"] > 0.25 and row["ks_stat"] is None
    same = categorical_drift(
        "event_type", pl.Series(["view", "cart", None] * 30), pl.Series(["view", None, "cart"])
    )
    assert same["unseen_share"] == 0.0 and same["psi"] < 1e-6


def test_assess_needs_enough_drifted_features_or_a_score_shift(
    frames: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    reference, current = frames
    features = ["stable", "shifted", "halved", "rare_count"]
    table = feature_drift(
        reference,
        current,
        features,
        {"channel": (["SEO", "Ads"] * 50, ["SEO", "Ads", "AppStore"] * 10)},
    )
    verdict = assess(table, DriftThresholds(min_drifted_features=3))
    assert verdict.drifted and set(verdict.drifted_features) == {"shifted", "halved", "channel"}
    assert verdict.reason.startswith("drift: 3 of 5 feature(s) drifted (≥ 3): ")
    assert "channel (PSI" in verdict.reason and "unseen 33%" in verdict.reason
    calm = assess(table, DriftThresholds(min_drifted_features=4))
    assert not calm.drifted and calm.reason.startswith("no drift: 3 of 5 feature(s) drifted (< 4)")
    rng = np.random.default_rng(3)
    with_score = pl.concat(
        [table, score_drift(rng.uniform(0, 800, 3000), rng.uniform(200, 1000, 800))]
    )
    verdict = assess(with_score, DriftThresholds(min_drifted_features=4))
    assert verdict.drifted and verdict.reason.startswith("drift: score distribution drifted (")
    assert "score" not in verdict.drifted_features


def test_drifted_is_per_feature_on_a_drifted_day(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, current = frames
    table = feature_drift(reference, current, ["stable", "shifted", "halved", "rare_count"])
    assert assess(table, DriftThresholds(min_drifted_features=2)).drifted
    flags = dict(flag_drifted(table, DriftThresholds()).select("feature", "drifted").iter_rows())
    assert flags == {"shifted": True, "halved": True, "stable": False, "rare_count": False}
    stable_psi = table.filter(pl.col("feature") == "stable")["psi"].item()
    assert stable_psi < 0.05  # a tiny PSI on a drifted day stays "not drifted"


def _warm_up_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two history features and a plain one; the current day is a warm-up day (no history yet)."""
    rng = np.random.default_rng(4)
    reference = pl.DataFrame(
        {
            "history_days": rng.integers(0, 8, 4000) * 1.0,
            "new_device": rng.binomial(1, 0.05, 4000) * 1.0,
            "n_views": rng.poisson(12, 4000) * 1.0,
        }
    )
    current = pl.DataFrame(
        {
            "history_days": np.zeros(800),
            "new_device": np.zeros(800),
            "n_views": rng.poisson(12, 800) * 1.0,
        }
    )
    return reference, current


def test_warm_up_day_leaves_history_features_out_of_the_verdict() -> None:
    reference, current = _warm_up_frames()
    features = ["history_days", "new_device", "n_views"]
    history = {"history_days", "new_device"}
    table, left_out = day_feature_drift(reference, current, features, history, None)
    assert set(left_out) == history and set(table["feature"]) == set(features)
    assert assess(table, DriftThresholds(min_drifted_features=2)).drifted  # without the rule
    verdict = assess(table, DriftThresholds(min_drifted_features=2), left_out)
    assert not verdict.drifted and "2 history feature(s) left out" in verdict.reason
    assert not flag_drifted(table, DriftThresholds(), left_out)["drifted"].any()


def test_full_history_day_compares_history_features_with_full_history_reference() -> None:
    reference, current = _warm_up_frames()
    features = ["history_days", "new_device", "n_views"]
    full = reference.with_columns(history_days=pl.lit(0.0), new_device=pl.lit(0.0))
    table, left_out = day_feature_drift(reference, current, features, {"history_days"}, full)
    assert left_out == ()
    history_days = table.filter(pl.col("feature") == "history_days").row(0, named=True)
    assert history_days["psi"] < 0.01 and history_days["ref_n"] == full.height
    # Without a full-history reference row the history features are left out again.
    _, left_out = day_feature_drift(reference, current, features, {"history_days"}, full.head(0))
    assert left_out == ("history_days",)


def test_history_features_are_features_of_the_contract() -> None:
    assert set(HISTORY_FEATURES) <= set(FEATURE_COLUMNS)


def test_bad_input_is_named(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, current = frames
    with pytest.raises(ValueError, match=r"current frame lacks feature column\(s\) \['nope'\]"):
        feature_drift(reference.with_columns(nope=pl.lit(1.0)), current, ["nope"])
    with pytest.raises(ValueError, match="current 'stable' has no finite values"):
        feature_drift(reference, current.head(0), ["stable"])
    with pytest.raises(ValueError, match=r"DriftThresholds\.psi must be > 0"):
        DriftThresholds(psi=0)
    with pytest.raises(ValueError, match="drift table lacks"):
        assess(pl.DataFrame({"feature": ["a"]}))


def test_plot_shows_the_most_drifted(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, current = frames
    table = feature_drift(reference, current, ["stable", "shifted", "halved"])
    figure = drift_figure(reference, current, table, top_n=2)
    titles = [ax.get_title() for ax in figure.axes]
    # the two drifted columns, most drifted first, with their own statistics; not "stable"
    expected = table.filter(pl.col("feature") != "stable")
    assert [t.split("\n")[0] for t in titles] == expected["feature"].to_list()
    for title, row in zip(titles, expected.iter_rows(named=True), strict=True):
        assert title.endswith(f"PSI {row['psi']:.2f} · KS {row['ks_stat']:.2f}")
    for ax in figure.axes:  # reference and current histograms side by side
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["reference", "current"]
    png = plot_drift(reference, current, table, top_n=2)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="nothing to plot"):
        drift_figure(reference, current, table.filter(pl.col("feature") == "nope"))


def test_unseen_categories_against_a_reference_set_leaves_psi_null() -> None:
    """The champion's bundle lists the categories training saw; only the unseen share is
    measured against that list (a PSI against it would flag every calm day)."""
    seen = {"channel": ["Ads", "SEO"], "event_type": ["view", "cart"]}
    rows = unseen_categories(
        seen,
        {"channel": {"SEO": 3, "AppStore": 2, None: 4, "Ads": 1}, "event_type": {"view": 90}},
    )
    by_feature = {r["feature"]: r for r in rows.iter_rows(named=True)}
    channel = by_feature["channel"]
    assert channel["unseen_share"] == pytest.approx(2 / 6)  # events, not values; null is not unseen
    assert (channel["ref_n"], channel["cur_n"]) == (2, 6)
    assert by_feature["event_type"]["unseen_share"] == 0.0
    assert rows["psi"].null_count() == rows.height
    assert unseen_categories(seen, {"channel": {None: 2}, "event_type": {}}).is_empty()
