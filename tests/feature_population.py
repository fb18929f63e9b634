"""Synthetic user-day feature tables for the reason, bundle and scoring tests: a plausible normal
population of every contract feature, and one typical row to perturb."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from anomaly_pipeline.feature_contract import FEATURE_COLUMNS, NO_PURCHASE_DELAY_S
from anomaly_pipeline.features.catalogue import (
    ACCOUNT_WINDOW_DAYS,
    FEATURES,
    NO_ACCOUNT_AGE_DAYS,
    SECONDS_PER_DAY,
    Check,
)


def population_frame(n: int = 3000, seed: int = 0) -> pl.DataFrame:
    """Normal user-days with every contract feature and plausible, skewed distributions."""
    rng = np.random.default_rng(seed)
    events = rng.poisson(30, n) + 1.0
    sessions = rng.poisson(1, n) + 1.0
    views = rng.binomial(events.astype(int), 0.6).astype(float)
    carts = rng.poisson(1, n).astype(float)
    purchases = rng.binomial(1, 0.3, n).astype(float)
    reviews = rng.binomial(1, 0.05, n) * (1.0 + rng.poisson(1, n))
    extreme = rng.binomial(reviews.astype(int), 0.3) / np.maximum(reviews, 1.0)
    signups = rng.binomial(1, 0.03, n).astype(float)
    history = rng.choice(np.arange(8.0), n, p=[0.05, 0.03, 0.03, 0.04, 0.05, 0.1, 0.2, 0.5])
    interval_mean = rng.lognormal(np.log(60), 0.5, n)
    cv = rng.uniform(0.8, 2.0, n)
    amount = purchases * rng.lognormal(np.log(40), 0.6, n)
    items = np.maximum(np.round(views * 0.7), 1.0)
    per_device = 1.0 + rng.binomial(1, 0.03, n)
    per_network = 1.0 + rng.poisson(2, n)
    # a third of the user-days belong to accounts that signed up within the account window
    age = np.where(
        rng.random(n) < 0.3, rng.integers(0, ACCOUNT_WINDOW_DAYS, n), NO_ACCOUNT_AGE_DAYS
    ).astype(float)
    columns = {
        "n_events": events,
        "n_sessions": sessions,
        "n_views": views,
        "n_clicks": rng.binomial(events.astype(int), 0.2).astype(float),
        "n_searches": rng.poisson(2, n).astype(float),
        "n_favs": rng.poisson(0.5, n) * 1.0,
        "n_carts": carts,
        "n_purchases": purchases,
        "n_reviews": reviews,
        "n_refunds": rng.binomial(1, 0.02, n) * 1.0,
        "n_coupons": rng.binomial(1, 0.05, n) * 1.0,
        "n_logins": 1.0 + rng.poisson(0.3, n),
        "n_signups": signups,
        "cart_or_buy_per_view": (carts + purchases) / np.maximum(views, 1.0),
        "cart_to_purchase_rate": purchases / np.maximum(carts, 1.0),
        "views_per_session": views / sessions,
        "max_views_per_session": np.ceil(views / sessions * 1.3),
        "dwell_mean_s": rng.lognormal(np.log(30), 0.5, n),
        "session_duration_mean_s": rng.lognormal(np.log(600), 0.6, n),
        "views_per_active_minute": rng.lognormal(np.log(2), 0.4, n),
        "purchase_amount_sum": amount,
        "purchase_amount_mean": amount,
        "rating_mean": np.where(reviews > 0, rng.uniform(3, 5, n), 0.0),
        "extreme_rating_share": extreme,
        "interval_mean_s": interval_mean,
        "interval_std_s": interval_mean * cv,
        "interval_cv": cv,
        "interval_min_s": rng.lognormal(np.log(3), 0.6, n),
        "night_share": rng.beta(1, 12, n),
        "first_purchase_delay_s": np.where(
            (age < NO_ACCOUNT_AGE_DAYS) & (purchases > 0),
            np.minimum(
                age * SECONDS_PER_DAY + rng.lognormal(np.log(3600), 0.8, n),
                NO_PURCHASE_DELAY_S - 1,
            ),
            NO_PURCHASE_DELAY_S,
        ),
        "account_age_days": age,
        "distinct_items": items,
        "distinct_categories": np.ceil(items * 0.3),
        "distinct_shops": np.ceil(items * 0.5),
        "distinct_devices": 1.0 + rng.binomial(1, 0.05, n),
        "distinct_ips": 1.0 + rng.binomial(1, 0.1, n),
        "distinct_ip_networks": np.ones(n),
        "users_per_device_day": per_device,
        "users_per_ip_network_day": per_network,
        "users_per_device_window": per_device + rng.binomial(1, 0.05, n),
        "users_per_ip_network_window": per_network + rng.poisson(1, n),
        "history_days": history,
        "events_vs_7d_median": rng.lognormal(0, 0.3, n),
        "views_vs_7d_median": rng.lognormal(0, 0.3, n),
        "purchases_vs_7d_median": rng.lognormal(0, 0.2, n),
        "new_device": np.where(history > 0, rng.binomial(1, 0.03, n), 1.0),
        "new_ip_network": np.where(history > 0, rng.binomial(1, 0.05, n), 1.0),
    }
    for feature in FEATURES:  # a feature added later: a skewed draw inside its bounds
        if feature.name not in columns:
            columns[feature.name] = _within(feature.check, rng, n)
    return pl.DataFrame({"user_key": [f"u{i}" for i in range(n)], **columns}).with_columns(
        event_day=pl.lit(date(2026, 11, 1))
    )


def _within(check: Check, rng: np.random.Generator, n: int) -> np.ndarray:
    """Plausible values of a catalogue feature without a hand-written distribution."""
    if check.isin is not None:
        return rng.choice(np.asarray(check.isin), n, p=None)
    low = check.ge if check.ge is not None else check.gt
    values = low + rng.lognormal(0.0, 0.5, n)
    return values if check.le is None else np.minimum(values, check.le)


def typical_row(population: pl.DataFrame, **overrides: float) -> pl.DataFrame:
    """One row at the population median of every feature (an established user), then overrides."""
    row = {c: float(population.get_column(c).median()) for c in FEATURE_COLUMNS}
    row.update(
        history_days=7.0,
        new_device=0.0,
        new_ip_network=0.0,
        n_signups=0.0,
        n_reviews=0.0,
        rating_mean=0.0,
        extreme_rating_share=0.0,
        first_purchase_delay_s=NO_PURCHASE_DELAY_S,
        account_age_days=float(NO_ACCOUNT_AGE_DAYS),
    )
    row.update({name: float(value) for name, value in overrides.items()})
    return pl.DataFrame([{"user_key": "x", **row}])
