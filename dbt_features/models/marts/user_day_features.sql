{#-
  One row per (user_key, event_day) with every feature of the catalogue
  (anomaly_pipeline/features/catalogue.py, as the generated macro catalogue()), all non-null;
  _marts.yml (generated too) documents each column.

  Sources: the range's events (counts, money, ratings, night share, breadth), its sessions
  (depth, dwell, durations, gaps between consecutive events) and, for the history and sharing
  features, int_sessions and int_user_day_access of the history days before the range, and for
  the account features int_user_day_milestones of the account window before it: earlier days
  come from those already-built tables, days inside the range from this run, so a whole week
  builds in one invocation.

  Conventions (so that every value is defined):
  * a ratio whose denominator is 0 is 0 (cart_or_buy_per_view and cart_to_purchase_rate divide by
    at least 1, so carting/buying without a view or cart still shows);
  * gaps ("intervals") are between a user's consecutive events of the day; std is the population
    std; all interval features are 0 for a one-event day;
  * views_per_active_minute counts each session as at least one minute of activity;
  * account features look back over the catalogue's account_window_days (90) of
    int_user_day_milestones, days <= the day only (a bounded look-back: the same rows whatever
    order days are built in): first_purchase_delay_s = seconds from the user's first signup in
    the window to the day's first purchase, clipped to [0, never]; never (no_purchase_delay_s,
    the window in seconds) when the user bought nothing that day or has no signup in the window;
    account_age_days = days from that signup to the day, no_account_age_days when none or when
    the user did nothing but sign up that day;
  * history (the catalogue's history_days before the day, active days only): *_vs_7d_median
    = (value + 1) / (median + 1), smoothed because a median of purchases is usually 0; 1 (no
    change) when the user has no history;
  * new_device / new_ip_network: 1 when the user has history and used a device / network that
    day not seen in that history;
  * users_per_*: the most users sharing any one of the user's devices / networks within one hour
    of the day (int_user_day_access' hour_of_day), on the day and over the 7 days ending on the
    day (0 when the user has none).
-#}
{%- set spec = catalogue() -%}
{%- set count_columns = spec.event_count_columns -%}
{%- set history_days = spec.history_days -%}
{%- set sharing_window_days = spec.sharing_window_days -%}
{%- set never_s = spec.no_purchase_delay_s -%}
{%- set no_age_days = spec.no_account_age_days -%}

with event_days as (

    select
        user_key,
        event_day,
        count(*) as n_events,
        {%- for event_type, column in count_columns.items() %}
        {{ count_where("event_type = '" ~ event_type ~ "'") }} as {{ column }},
        {%- endfor %}
        coalesce({{ agg_where('sum', 'amount', "event_type = 'purchase'") }}, 0) as purchase_amount_sum,
        coalesce({{ agg_where('avg', 'amount', "event_type = 'purchase'") }}, 0) as purchase_amount_mean,
        coalesce({{ agg_where('avg', 'rating', "event_type = 'review'") }}, 0) as rating_mean,
        coalesce(
            {{ agg_where('avg', 'cast(rating in (1, 5) as integer)',
                         "event_type = 'review' and rating is not null") }},
            0
        ) as extreme_rating_share,
        avg(cast({{ local_hour('event_time') }} < 5 as integer)) as night_share,
        count(distinct item_id) as distinct_items,
        count(distinct category_id) as distinct_categories,
        count(distinct shop_id) as distinct_shops
    from {{ ref('stg_events') }}
    where event_day between {{ start_day() }} and {{ end_day() }}
    group by user_key, event_day

),

session_days as (

    -- Range days and the history before them: the history only needs the three counts.
    select
        user_key,
        event_day,
        count(*) as n_sessions,
        sum(n_events) as n_events,
        sum(n_views) as n_views,
        sum(n_purchases) as n_purchases,
        max(n_views) as max_views_per_session,
        avg(duration_s) as session_duration_mean_s,
        sum(greatest(duration_s, 60)) / 60 as active_minutes,
        sum(view_dwell_sum_s) as view_dwell_sum_s,
        sum(n_view_dwells) as n_view_dwells,
        sum(n_events) - 1 as n_intervals,
        sum(duration_s) + coalesce(sum(gap_before_s), 0) as interval_sum_s,
        sum(inner_gap_sq_sum_s2) + coalesce(sum(gap_before_s * gap_before_s), 0)
            as interval_sq_sum_s2,
        least(min(inner_gap_min_s), min(gap_before_s)) as interval_min_s
    from {{ ref('int_sessions') }}
    where event_day between {{ history_start_day() }} and {{ end_day() }}
    group by user_key, event_day

),

history as (

    select
        user_key,
        event_day,
        count(*) over previous_days as history_days,
        -- the gap is capped at history_days + 1 ("none in the window"), so a one-day run and a
        -- range run agree although the range sees further back
        coalesce(
            least({{ days_between('event_day',
                                  'lag(event_day) over (partition by user_key order by event_day)') }},
                  {{ history_days + 1 }}),
            {{ history_days + 1 }}
        ) as days_since_last_active,
        {{ median('n_events') }} over previous_days as events_median,
        {{ median('n_views') }} over previous_days as views_median,
        {{ median('n_purchases') }} over previous_days as purchases_median
    from session_days
    window previous_days as (
        partition by user_key order by event_day
        range between interval {{ history_days }} days preceding and interval 1 day preceding
    )

),

milestones as (

    select user_key, event_day, first_signup_at, first_purchase_at
    from {{ ref('int_user_day_milestones') }}
    where event_day between {{ account_start_day() }} and {{ end_day() }}

),

account as (

    -- Per range user-day: the user's first signup in the account window ending on the day, and
    -- the day's first purchase (a user-day without either has no row: "never" / no age).
    select
        days.user_key,
        days.event_day,
        min(window_days.first_signup_at) as signup_at,
        min(case when window_days.first_signup_at is not null
            then window_days.event_day end) as signup_day,
        max(case when window_days.event_day = days.event_day
            then window_days.first_purchase_at end) as purchase_at
    from event_days as days
    inner join milestones as window_days
        on window_days.user_key = days.user_key
        and window_days.event_day
            between {{ add_days('days.event_day', -spec.account_window_days) }}
            and days.event_day
    group by days.user_key, days.event_day

),

access as (

    select user_key, event_day, hour_of_day, device_key, ip_key, ip_network_key
    from {{ ref('int_user_day_access') }}
    where event_day between {{ history_start_day() }} and {{ end_day() }}

),

breadth as (

    select
        user_key,
        event_day,
        count(distinct device_key) as distinct_devices,
        count(distinct ip_key) as distinct_ips,
        count(distinct ip_network_key) as distinct_ip_networks
    from access
    where event_day between {{ start_day() }} and {{ end_day() }}
    group by user_key, event_day

),

{%- for entity in ['device', 'ip_network'] %}

{{ entity }}_days as (

    select distinct user_key, event_day, {{ entity }}_key as entity_key
    from access
    where {{ entity }}_key is not null

),

{{ entity }}_hours as (

    select distinct user_key, event_day, hour_of_day, {{ entity }}_key as entity_key
    from access
    where {{ entity }}_key is not null
        and event_day between {{ start_day() }} and {{ end_day() }}

),

{{ entity }}_hour_features as (

    -- The most users on one of the user's entities within an hour the user used it.
    select uses.user_key, uses.event_day, max(hour_users.n_users) as users_per_{{ entity }}_hour
    from {{ entity }}_hours as uses
    inner join (
        select entity_key, event_day, hour_of_day, count(*) as n_users
        from {{ entity }}_hours
        group by entity_key, event_day, hour_of_day
    ) as hour_users using (entity_key, event_day, hour_of_day)
    group by uses.user_key, uses.event_day

),

{{ entity }}_users_day as (

    select entity_key, event_day, count(*) as n_users
    from {{ entity }}_days
    where event_day between {{ start_day() }} and {{ end_day() }}
    group by entity_key, event_day

),

{{ entity }}_users_window as (

    -- Distinct users of each entity over the window ending on each range day.
    select range_days.entity_key, range_days.event_day, count(distinct window_days.user_key) as n_users
    from {{ entity }}_users_day as range_days
    inner join {{ entity }}_days as window_days
        on window_days.entity_key = range_days.entity_key
        and window_days.event_day
            between {{ add_days('range_days.event_day', 1 - sharing_window_days) }}
            and range_days.event_day
    group by range_days.entity_key, range_days.event_day

),

{{ entity }}_features as (

    select
        uses.user_key,
        uses.event_day,
        max(day_users.n_users) as users_per_{{ entity }}_day,
        max(window_users.n_users) as users_per_{{ entity }}_window,
        max(cast(uses.previous_day is null
            or {{ days_between('uses.event_day', 'uses.previous_day') }} > {{ history_days }}
            as integer)) as unseen_{{ entity }}
    from (
        select
            *,
            lag(event_day) over (partition by user_key, entity_key order by event_day) as previous_day
        from {{ entity }}_days
    ) as uses
    inner join {{ entity }}_users_day as day_users using (entity_key, event_day)
    inner join {{ entity }}_users_window as window_users using (entity_key, event_day)
    group by uses.user_key, uses.event_day

),
{%- endfor %}

assembled as (

    select
        events.user_key,
        events.event_day,
        events.n_events,
        sessions.n_sessions,
        {%- for column in count_columns.values() %}
        events.{{ column }},
        {%- endfor %}
        (events.n_carts + events.n_purchases) / greatest(events.n_views, 1) as cart_or_buy_per_view,
        events.n_purchases / greatest(events.n_carts, 1) as cart_to_purchase_rate,
        events.n_views / sessions.n_sessions as views_per_session,
        sessions.max_views_per_session,
        coalesce(sessions.view_dwell_sum_s / nullif(sessions.n_view_dwells, 0), 0) as dwell_mean_s,
        sessions.session_duration_mean_s,
        events.n_views / sessions.active_minutes as views_per_active_minute,
        events.purchase_amount_sum,
        events.purchase_amount_mean,
        events.rating_mean,
        events.extreme_rating_share,
        coalesce(sessions.interval_sum_s / nullif(sessions.n_intervals, 0), 0) as interval_mean_s,
        coalesce(
            sqrt(greatest(
                sessions.interval_sq_sum_s2 / nullif(sessions.n_intervals, 0)
                - pow(sessions.interval_sum_s / nullif(sessions.n_intervals, 0), 2),
                0
            )),
            0
        ) as interval_std_s,
        coalesce(sessions.interval_min_s, 0) as interval_min_s,
        events.night_share,
        -- (DuckDB's least/greatest skip NULLs, hence the explicit case)
        case when account.purchase_at is null or account.signup_at is null then {{ never_s }}
            else least(greatest(
                ({{ epoch_us('account.purchase_at') }} - {{ epoch_us('account.signup_at') }}) / 1e6,
                0), {{ never_s }})
        end as first_purchase_delay_s,
        -- a day of signing up and nothing else is every account's first day, not a sign
        case when events.n_events > events.n_signups
            then coalesce({{ days_between('events.event_day', 'account.signup_day') }},
                {{ no_age_days }})
            else {{ no_age_days }}
        end as account_age_days,
        events.distinct_items,
        events.distinct_categories,
        events.distinct_shops,
        coalesce(breadth.distinct_devices, 0) as distinct_devices,
        coalesce(breadth.distinct_ips, 0) as distinct_ips,
        coalesce(breadth.distinct_ip_networks, 0) as distinct_ip_networks,
        coalesce(device_hour_features.users_per_device_hour, 0) as users_per_device_hour,
        coalesce(ip_network_hour_features.users_per_ip_network_hour, 0)
            as users_per_ip_network_hour,
        coalesce(device_features.users_per_device_day, 0) as users_per_device_day,
        coalesce(ip_network_features.users_per_ip_network_day, 0) as users_per_ip_network_day,
        coalesce(device_features.users_per_device_window, 0) as users_per_device_window,
        coalesce(ip_network_features.users_per_ip_network_window, 0) as users_per_ip_network_window,
        history.history_days,
        history.days_since_last_active,
        {%- for measure, median_column in [('n_events', 'events_median'),
                                           ('n_views', 'views_median'),
                                           ('n_purchases', 'purchases_median')] %}
        case when history.history_days > 0
            then (events.{{ measure }} + 1) / (history.{{ median_column }} + 1)
            else 1
        end as {{ median_column | replace('_median', '') }}_vs_7d_median,
        {%- endfor %}
        case when history.history_days > 0
            then coalesce(device_features.unseen_device, 0) else 0 end as new_device,
        case when history.history_days > 0
            then coalesce(ip_network_features.unseen_ip_network, 0) else 0 end as new_ip_network
    from event_days as events
    inner join session_days as sessions using (user_key, event_day)
    inner join history using (user_key, event_day)
    left join breadth using (user_key, event_day)
    left join account using (user_key, event_day)
    left join device_features using (user_key, event_day)
    left join ip_network_features using (user_key, event_day)
    left join device_hour_features using (user_key, event_day)
    left join ip_network_hour_features using (user_key, event_day)

)

select
    user_key,
    event_day,
    {%- for feature in spec.features %}
    {%- if feature.name == 'interval_cv' %}
    cast(coalesce(interval_std_s / nullif(interval_mean_s, 0), 0) as {{ feature.dtype }}) as interval_cv
    {%- else %}
    cast({{ feature.name }} as {{ feature.dtype }}) as {{ feature.name }}
    {%- endif %}{{ "," if not loop.last }}
    {%- endfor %}
from assembled
