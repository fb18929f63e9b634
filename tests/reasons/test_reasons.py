"""ReasonCoder: population statistics, human-readable reasons and stable codes per signature."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import numpy as np
import polars as pl
import pytest
from feature_population import population_frame, typical_row

from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, NO_PURCHASE_DELAY_S
from anomaly_pipeline.features.catalogue import BY_NAME, SHARING_WINDOW_DAYS
from anomaly_pipeline.reasons import TEMPLATED_FEATURES, Explanation, FeatureStats, ReasonCoder
from anomaly_pipeline.reasons.templates import template_for


@pytest.fixture(scope="module")
def population() -> pl.DataFrame:
    return population_frame()


@pytest.fixture(scope="module")
def coder(population: pl.DataFrame) -> ReasonCoder:
    return ReasonCoder().fit(population.select(FEATURE_COLUMNS))


def _codes(coder: ReasonCoder, row: pl.DataFrame) -> list[str]:
    return coder.explain(row).codes[0]


def test_every_contract_feature_has_its_own_template() -> None:
    assert set(FEATURE_COLUMNS) <= TEMPLATED_FEATURES


def test_fit_learns_population_medians(coder: ReasonCoder, population: pl.DataFrame) -> None:
    assert coder.stats_["n_events"].median == pytest.approx(population["n_events"].median())
    # a feature's statistics use only the rows where it applies: real signup delays, no sentinel
    known = population.filter(pl.col("first_purchase_delay_s") < NO_PURCHASE_DELAY_S)
    assert coder.stats_["first_purchase_delay_s"].median == pytest.approx(
        known["first_purchase_delay_s"].median()
    )
    assert coder.stats_["interval_cv"].scale > 0 and coder.stats_["n_signups"].scale > 0


_LOW_IS_ABNORMAL = {
    "dwell_mean_s": 0.2,
    "interval_mean_s": 0.5,
    "interval_min_s": 0.01,
    "interval_std_s": 0.01,
    "interval_cv": 0.01,
    "first_purchase_delay_s": 5.0,
    "account_age_days": 0.0,
    "history_days": 0.0,
}
_BOUNDED = {
    "night_share": 0.95,
    "extreme_rating_share": 1.0,
    "rating_mean": 1.0,
    "new_device": 1.0,
    "new_ip_network": 1.0,
}


@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_every_feature_becomes_a_readable_reason_when_abnormal(
    coder: ReasonCoder, population: pl.DataFrame, feature: str
) -> None:
    high = float(population.get_column(feature).quantile(0.9)) * 20 + 20
    low = 0.0 if BY_NAME[feature].direction == "low" else high
    value = _LOW_IS_ABNORMAL.get(feature, _BOUNDED.get(feature, low))
    # guards: review features need reviews, order value needs a purchase
    row = typical_row(
        population,
        **{
            "n_reviews": 3,
            "rating_mean": 4.0,
            "extreme_rating_share": 0.3,
            "n_purchases": 1,
            feature: value,
        },
    )
    reasons = [r for r in coder.explain(row, top_k=50).reasons[0] if r.feature == feature]
    assert len(reasons) == 1, coder.explain(row, top_k=50).texts
    reason = reasons[0]
    assert reason.code.isidentifier() and reason.code == reason.code.lower()
    assert reason.text and "nan" not in reason.text and "inf" not in reason.text
    assert not reason.text.startswith("unusually"), "contract features have their own wording"


def test_a_typical_user_gets_no_reasons(coder: ReasonCoder, population: pl.DataFrame) -> None:
    explanation = coder.explain(typical_row(population))
    assert explanation.texts == [[]] and explanation.codes == [[]]


def test_click_bot_is_explained_by_view_rate_and_regularity(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    bot = typical_row(
        population,
        n_events=120,
        n_views=110,
        views_per_active_minute=47.0,
        interval_cv=0.03,
        interval_std_s=0.09,
        interval_mean_s=3.0,
    )
    explanation = coder.explain(bot)
    codes, texts = explanation.codes[0], explanation.texts[0]
    assert {"high_view_rate", "machine_regular_intervals"} <= set(codes)
    median_rate = coder.stats_["views_per_active_minute"].median
    assert f"47.0 views/min, {47.0 / median_rate:.0f}× the population median" in texts
    assert any(t.startswith("machine-regular clicks: ") for t in texts)
    cv_only = coder.explain(typical_row(population, n_events=40, interval_cv=0.03)).texts[0]
    assert cv_only[0].startswith("machine-regular clicks: interval CV 0.03 (population median")


def test_account_takeover_is_one_new_device_and_network_reason(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    takeover = typical_row(population, new_device=1.0, new_ip_network=1.0)
    explanation = coder.explain(takeover)
    assert explanation.codes[0] == ["new_device_and_ip_network"]
    assert explanation.texts[0] == ["new device and new IP network, first seen today"]
    # only the device is new: the reason says just that
    assert _codes(coder, typical_row(population, new_device=1.0)) == ["new_device"]


def test_new_device_on_a_first_day_is_not_a_reason(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    newcomer = typical_row(population, history_days=0.0, new_device=1.0, new_ip_network=1.0)
    assert "new_device_and_ip_network" not in _codes(coder, newcomer)


def test_order_brushing_is_explained_by_purchases_per_view_and_shared_device(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    brushing = typical_row(
        population, n_views=10, n_purchases=9, cart_or_buy_per_view=0.9, users_per_device_day=5
    )
    explanation = coder.explain(brushing)
    assert {"high_purchase_per_view", "shared_device"} <= set(explanation.codes[0])
    assert "device shared by 5 users today" in explanation.texts[0]
    assert any(t.startswith("9 carts or purchases per 10 views") for t in explanation.texts[0])


def test_scraping_is_explained_by_distinct_items_and_view_rate(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    scraper = typical_row(population, distinct_items=312, views_per_active_minute=20.0)
    explanation = coder.explain(scraper)
    assert {"many_distinct_items", "high_view_rate"} <= set(explanation.codes[0])
    assert any(t.startswith("312 distinct items viewed, ") for t in explanation.texts[0])


def test_coupon_abuse_is_explained_by_signup_delay_and_shared_device(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    abuser = typical_row(
        population,
        n_signups=1,
        n_purchases=1,
        n_coupons=1,
        history_days=0,
        first_purchase_delay_s=42,
        users_per_device_day=6,
    )
    explanation = coder.explain(abuser)
    assert {"purchase_right_after_signup", "shared_device"} <= set(explanation.codes[0])
    assert any(t.startswith("purchase 42 s after signup") for t in explanation.texts[0])


def test_fake_reviews_are_explained_by_review_count_and_extreme_ratings(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    reviewer = typical_row(population, n_reviews=12, rating_mean=5.0, extreme_rating_share=1.0)
    explanation = coder.explain(reviewer)
    assert {"many_reviews", "extreme_ratings"} <= set(explanation.codes[0])
    assert any(t.startswith("12 reviews written today") for t in explanation.texts[0])
    assert any(t.startswith("100 % of 12 reviews rated 1 or 5 stars") for t in explanation.texts[0])


def test_night_activity_and_own_history_templates(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    night_owl = typical_row(population, night_share=0.86, n_events=40, events_vs_7d_median=2.5)
    texts = coder.explain(night_owl).texts[0]
    assert any(t.startswith("86 % of activity at night (00–05 source local time), ") for t in texts)
    assert "2.5× the user's 7-day median events (40 today)" in texts


def test_contributions_choose_the_reasons_and_the_population_orders_them(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    row = typical_row(population, views_per_active_minute=47.0, distinct_items=312)
    contributions = np.zeros((1, len(FEATURE_COLUMNS)))
    contributions[0, FEATURE_COLUMNS.index("distinct_items")] = 0.9
    contributions[0, FEATURE_COLUMNS.index("views_per_active_minute")] = 0.1
    # a large contribution on a feature at the normal side of the population is no reason
    contributions[0, FEATURE_COLUMNS.index("n_clicks")] = 5.0
    explanation = coder.explain(row, contributions)
    assert explanation.codes[0] == coder.explain(row).codes[0][:2]  # both, in z order
    assert set(explanation.codes[0]) == {"many_distinct_items", "high_view_rate"}
    contributions[0, FEATURE_COLUMNS.index("views_per_active_minute")] = 0.0  # not pushed
    assert coder.explain(row, contributions).codes[0] == ["many_distinct_items"]


def test_top_k_caps_the_reasons_and_explanation_is_a_sequence_of_texts(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    rows = pl.concat(
        [
            typical_row(
                population,
                n_reviews=12,
                extreme_rating_share=1.0,
                rating_mean=1.0,
                night_share=0.9,
                users_per_device_day=8,
            ),
            typical_row(population),
        ]
    )
    explanation = coder.explain(rows, top_k=2)
    assert isinstance(explanation, Explanation) and len(explanation) == 2
    assert len(explanation[0]) == 2 and explanation[1] == []
    assert list(explanation) == explanation.texts
    strengths = [r.strength for r in explanation.reasons[0]]
    assert strengths == sorted(strengths, reverse=True)


def test_unknown_feature_gets_the_generic_template(population: pl.DataFrame) -> None:
    frame = population.select("n_events").with_columns(
        basket_entropy=pl.Series(np.random.default_rng(1).normal(1.0, 0.1, population.height))
    )
    coder = ReasonCoder().fit(frame)
    explanation = coder.explain(pl.DataFrame({"n_events": [31.0], "basket_entropy": [3.0]}))
    assert explanation.codes[0] == ["unusual_basket_entropy"]
    assert explanation.texts[0][0].startswith("unusually high basket_entropy: 3")


def test_round_trip_through_json(coder: ReasonCoder, population: pl.DataFrame) -> None:
    restored = ReasonCoder.from_dict(json.loads(json.dumps(coder.to_dict())))
    row = typical_row(population, distinct_items=312, users_per_device_day=5)
    assert restored.explain(row).texts == coder.explain(row).texts


def test_bad_input_is_named(coder: ReasonCoder, population: pl.DataFrame) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        ReasonCoder().explain(population.head(1))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['nope'\]"):
        ReasonCoder().fit(population, feature_names=["nope"])
    with pytest.raises(ValueError, match=r"must be numeric.*user_key"):
        ReasonCoder().fit(population, feature_names=["user_key"])
    with pytest.raises(ValueError, match=r"contributions has shape \(1, 2\)"):
        coder.explain(typical_row(population), np.zeros((1, 2)))


def test_a_point_mass_median_takes_its_scale_from_the_tail() -> None:
    """Mostly zeros, a tail to 0.7: the scale reaches the tail (0.3 is no 6-sigma event); a
    continuous feature keeps its robust spread, which a few percent of abnormal rows do not move."""
    rng = np.random.default_rng(0)
    ratio = np.r_[np.zeros(600), rng.uniform(0.0, 0.05, 370), rng.uniform(0.3, 0.7, 30)]
    stats = FeatureStats.of(ratio, log=True, direction="high")
    assert np.log1p(0.3) / stats.scale < 2.0
    delays = np.r_[rng.lognormal(np.log(1e5), 1.0, 900), np.full(100, 30.0)]  # 10 % fraud
    clean = FeatureStats.of(delays[:900], log=True, direction="low")
    assert FeatureStats.of(delays, log=True, direction="low").scale < 1.5 * clean.scale


def test_the_signup_delay_outranks_a_ratio_within_the_normal_tail(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    """A purchase 5 s after signup is far below every normal delay; a carts-or-purchases ratio
    seen on three normal user-days in a hundred is no match for it."""
    busy_buyer = float(population["cart_or_buy_per_view"].quantile(0.97))
    row = typical_row(
        population,
        n_purchases=1,
        account_age_days=0,
        first_purchase_delay_s=5.0,
        cart_or_buy_per_view=busy_buyer,
    )
    assert _codes(coder, row)[0] == "purchase_right_after_signup"


def test_each_row_is_explained_from_its_own_numbers_alone(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    """Rows without reasons between rows with reasons, and a null: a null is no value to a
    template (the new-access reason reads ``new_device`` with a default of 0), and every row
    reads as it does scored alone."""
    rows = pl.concat(
        [
            typical_row(population),
            typical_row(population, new_ip_network=1.0),
            typical_row(population),
            typical_row(population, n_reviews=12, rating_mean=5.0, extreme_rating_share=1.0),
            typical_row(population),
        ]
    ).with_columns(
        new_device=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise("new_device")
    )
    explanation = coder.explain(rows)
    codes = explanation.codes
    assert codes[0] == codes[2] == codes[4] == []
    assert codes[1] == ["new_ip_network"]
    assert explanation.texts[1] == ["new IP network, first seen today"]
    assert {"many_reviews", "extreme_ratings"} <= set(codes[3])
    alone = [coder.explain(rows.slice(i, 1)) for i in range(rows.height)]
    assert codes == [one.codes[0] for one in alone]
    assert explanation.texts == [one.texts[0] for one in alone]
    assert explanation.reasons == [one.reasons[0] for one in alone]
    assert explanation[-2] == explanation.texts[3] and list(explanation) == explanation.texts
    with pytest.raises(IndexError):
        explanation[rows.height]
    # the columns scoring stores: one List(String) each, empty lists where no reason
    for column, expected in (
        (explanation.text_column(), explanation.texts),
        (explanation.code_column(), codes),
    ):
        assert column.dtype == pl.List(pl.String) and column.null_count() == 0
        assert column.to_list() == expected


def test_rows_with_the_same_numbers_share_a_rendering_and_keep_their_places(
    coder: ReasonCoder, population: pl.DataFrame
) -> None:
    """The coder renders a (template, trigger) group once per distinct combination of the values
    its template reads: repeated and distinct abnormal rows, interleaved with normal ones, each
    get the reasons they get alone, at their own position."""
    abnormal = [
        typical_row(population, n_reviews=12, rating_mean=5.0, extreme_rating_share=1.0),
        typical_row(population, n_reviews=3, rating_mean=5.0, extreme_rating_share=1.0),
        typical_row(population, new_ip_network=1.0, new_device=1.0),
        typical_row(population, new_ip_network=1.0),
        typical_row(population, n_events=900.0, night_share=0.9),
    ]
    picks = np.random.default_rng(3).integers(0, len(abnormal), 40)
    rows = pl.concat(
        [abnormal[i] if k % 3 else population.slice(k, 1) for k, i in enumerate(picks.tolist())],
        how="diagonal_relaxed",
    ).select(FEATURE_COLUMNS)
    explanation = coder.explain(rows)
    alone = [coder.explain(rows.slice(i, 1)) for i in range(rows.height)]
    assert explanation.reasons == [one.reasons[0] for one in alone]
    assert sum(map(len, explanation.codes)) > rows.height  # most rows have several reasons


class _OnlyReads(Mapping[str, float]):
    """A row that fails the test when a template reads a column outside its ``reads``."""

    def __init__(self, row: Mapping[str, float], reads: tuple[str, ...]) -> None:
        self._row, self._reads = row, reads

    def __getitem__(self, column: str) -> float:
        assert column in self._reads, f"the template read {column!r}, not in {self._reads}"
        return self._row[column]

    def __iter__(self) -> Iterator[str]:
        return (c for c in self._reads if c in self._row)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@pytest.mark.parametrize("feature", FEATURE_COLUMNS)
def test_a_template_reads_only_the_columns_it_declares(
    coder: ReasonCoder, population: pl.DataFrame, feature: str
) -> None:
    """The coder hands a template only its ``reads`` columns: every template, phrased by each of
    its features, reads nothing else on normal and abnormal rows, with and without the
    context columns."""
    template = template_for(feature)
    busy = typical_row(population, n_reviews=12, rating_mean=5.0, users_per_device_window=9)
    rows = [*population.head(30).to_dicts(), busy.row(0, named=True)]
    for row in rows + [{c: v for c, v in row.items() if c in template.features} for row in rows]:
        for trigger in template.features:
            code, text = template.render(_OnlyReads(row, template.reads), trigger, coder.stats_)
            assert (code, text) == template.render(row, trigger, coder.stats_) and text


@pytest.mark.parametrize(
    ("window", "device_clause"),
    [
        (
            pl.Series([12], dtype=pl.Int64),
            f" on a device used by 12 accounts in {SHARING_WINDOW_DAYS} days",
        ),
        # a bool is a number (1 account: no sharing to mention); text is not, so today's count
        (pl.Series([True]), ""),
        (pl.Series(["12"]), " on a device used by 6 accounts today"),
    ],
)
def test_a_template_reads_the_numbers_of_columns_outside_the_fitted_features(
    population: pl.DataFrame, window: pl.Series, device_clause: str
) -> None:
    """The signup-delay reason names a shared device from ``users_per_device_window`` when the
    row has it as a number, also when the coder was not fitted on it."""
    fitted = [c for c in FEATURE_COLUMNS if c != "users_per_device_window"]
    coder = ReasonCoder().fit(population.select(fitted))
    abuser = typical_row(
        population,
        n_signups=1,
        n_purchases=1,
        history_days=0,
        first_purchase_delay_s=42,
        users_per_device_day=6,
    ).with_columns(users_per_device_window=window)
    texts = coder.explain(abuser, top_k=50).texts[0]
    delay = [t for t in texts if t.startswith("purchase 42 s after signup")]
    assert len(delay) == 1
    assert delay[0].startswith(f"purchase 42 s after signup{device_clause} (population median ")
