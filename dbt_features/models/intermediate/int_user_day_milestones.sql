{#-
  The account milestones of each user-day: the day's first signup and first purchase, only for
  user-days with either. Much smaller than the events, so the mart reads the catalogue's
  account window of earlier days from here (a bounded look-back: the signup of an account older
  than the window is not seen, and a day's rows depend only on that window, so re-runs and
  out-of-order backfills agree) instead of re-scanning months of events.
-#}
select
    user_key,
    event_day,
    {{ agg_where('min', 'event_time', "event_type = 'signup'") }} as first_signup_at,
    {{ agg_where('min', 'event_time', "event_type = 'purchase'") }} as first_purchase_at
from {{ ref('stg_events') }}
where event_day between {{ start_day() }} and {{ end_day() }}
    and event_type in ('signup', 'purchase')
group by user_key, event_day
