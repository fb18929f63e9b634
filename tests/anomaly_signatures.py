"""Reason codes that name each simulated anomaly type's behavioural signature
(``anomaly_pipeline/simulate/anomalies.py``): what a top reason of that type may say."""

from __future__ import annotations

from typing import Final

SIGNATURES: Final[dict[str, frozenset[str]]] = {
    "click_bot": frozenset(
        {
            "high_view_rate",
            "machine_regular_intervals",
            "rapid_events",
            "rapid_fire_events",
            "short_dwell",
            "high_event_volume",
            "high_view_count",
            "high_click_count",
            "high_views_per_session",
            "long_view_burst",
            "night_activity",
        }
    ),
    "account_takeover": frozenset(
        {
            "new_device_and_ip_network",
            "new_device",
            "new_ip_network",
            "high_purchase_count",
            "high_spend",
            "high_order_value",
            "high_purchase_per_view",
            "many_devices",
            "many_ips",
            "many_ip_networks",
            "night_activity",
        }
    ),
    # cheap buys with hardly a view, fast (4 s gaps) and together as a ring, then reviewed
    "order_brushing": frozenset(
        {
            "high_purchase_per_view",
            "shared_device",
            "shared_ip_network",
            "high_purchase_count",
            "high_cart_to_purchase",
            "many_reviews",
            "extreme_ratings",
            "high_view_rate",
            "rapid_events",
            "rapid_fire_events",
            "short_dwell",
            "machine_regular_intervals",
        }
    ),
    "scraping": frozenset(
        {
            "many_distinct_items",
            "many_distinct_categories",
            "many_distinct_shops",
            "high_view_rate",
            "high_view_count",
            "high_event_volume",
            "long_view_burst",
            "high_views_per_session",
            "rapid_events",
            "rapid_fire_events",
            "machine_regular_intervals",
        }
    ),
    # fresh accounts in a burst on shared devices: coupons and a purchase seconds after signup
    "coupon_abuse": frozenset(
        {
            "purchase_right_after_signup",
            "new_account",
            "shared_device",
            "shared_ip_network",
            "many_coupons",
            "repeated_signups",
            "high_purchase_per_view",
        }
    ),
    "fake_review": frozenset({"many_reviews", "extreme_ratings", "unusual_rating", "short_dwell"}),
}
