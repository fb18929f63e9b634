{#-
  The feature columns of user_day_features, in the order of docs/contracts.md. Mirrors
  anomaly_pipeline.feature_contract.FEATURE_COLUMNS (tests/test_dbt_features.py checks that the
  built table has exactly those columns in that order).
-#}
{% macro feature_columns() -%}
    {{- return([
        'n_events', 'n_sessions', 'n_views', 'n_clicks', 'n_searches', 'n_favs', 'n_carts',
        'n_purchases', 'n_reviews', 'n_refunds', 'n_coupons', 'n_logins', 'n_signups',
        'cart_or_buy_per_view', 'cart_to_purchase_rate', 'views_per_session',
        'max_views_per_session', 'dwell_mean_s', 'session_duration_mean_s',
        'views_per_active_minute',
        'purchase_amount_sum', 'purchase_amount_mean', 'rating_mean', 'extreme_rating_share',
        'interval_mean_s', 'interval_std_s', 'interval_cv', 'interval_min_s', 'night_share',
        'first_purchase_delay_s',
        'distinct_items', 'distinct_categories', 'distinct_shops', 'distinct_devices',
        'distinct_ips', 'distinct_ip_networks', 'users_per_device_day', 'users_per_ip_network_day',
        'users_per_device_window', 'users_per_ip_network_window',
        'history_days', 'events_vs_7d_median', 'views_vs_7d_median', 'purchases_vs_7d_median',
        'new_device', 'new_ip_network',
    ]) -}}
{%- endmacro %}
