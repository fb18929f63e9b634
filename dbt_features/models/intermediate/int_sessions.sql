{#-
  One row per session: a user's events of one day, split wherever the catalogue's
  session gap (anomaly_pipeline/features/catalogue.py: SESSION_GAP_MINUTES) passes without an event. Sessions never span midnight, so each partition day is rebuilt
  on its own (a source's session_id is not used: many sources have none and the gap rule is the
  same for all).

  Besides the usual session facts, each row carries the sums the mart needs for the statistics of
  the gaps between a user's consecutive events (the gap before the session and the sum, sum of
  squares and minimum of the gaps inside it), so the mart never re-reads events in time order.
  Events at the same instant are ordered by event_id, so the result is deterministic.
-#}
{% set gap_limit_s = catalogue().session_gap_minutes * 60 %}

with events as (

    select user_key, event_day, event_time, event_id, event_type
    from {{ ref('stg_events') }}
    where event_day between {{ start_day() }} and {{ end_day() }}

),

gaps as (

    select
        user_key,
        event_day,
        event_time,
        event_type,
        row_number() over user_day as event_seq,
        ({{ epoch_us('event_time') }} - lag({{ epoch_us('event_time') }}) over user_day) / 1e6 as gap_s,
        lag(event_type) over user_day as previous_type
    from events
    window user_day as (partition by user_key, event_day order by event_time, event_id)

),

numbered as (

    select
        *,
        sum(cast(starts_session as integer)) over (
            partition by user_key, event_day order by event_seq
            rows between unbounded preceding and current row
        ) as session_index
    from (
        select *, coalesce(gap_s > {{ gap_limit_s }}, true) as starts_session
        from gaps
    ) as flagged

)

select
    user_key,
    event_day,
    cast(session_index as integer) as session_index,
    min(event_time) as session_start,
    max(event_time) as session_end,
    coalesce({{ agg_where('sum', 'gap_s', 'not starts_session') }}, 0) as duration_s,
    count(*) as n_events,
    {{ count_where("event_type = 'view'") }} as n_views,
    {{ count_where("event_type = 'cart'") }} as n_carts,
    {{ count_where("event_type = 'purchase'") }} as n_purchases,
    -- Seconds since the user's previous session ended; NULL for the day's first session.
    {{ agg_where('max', 'gap_s', 'starts_session') }} as gap_before_s,
    coalesce({{ agg_where('sum', 'gap_s * gap_s', 'not starts_session') }}, 0) as inner_gap_sq_sum_s2,
    -- Smallest gap inside the session; NULL for a one-event session.
    {{ agg_where('min', 'gap_s', 'not starts_session') }} as inner_gap_min_s,
    -- Dwell: time from a view to the next event of the same session.
    coalesce(
        {{ agg_where('sum', 'gap_s', "not starts_session and previous_type = 'view'") }}, 0
    ) as view_dwell_sum_s,
    {{ count_where("not starts_session and previous_type = 'view'") }} as n_view_dwells
from numbered
group by user_key, event_day, session_index
