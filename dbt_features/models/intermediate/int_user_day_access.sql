{#-
  The distinct (device, IP, IP network) combinations each user acted from in each hour of each
  day (the hour of the source's local clock, as night_share reads it), with their event counts.
  Small next to the events, so the mart reads earlier days from here for the "new device /
  network" and "users per device / network over the window" features, and the hours of the range
  for "users per device / network within an hour", instead of re-scanning events.
-#}
select
    user_key,
    event_day,
    {{ local_hour('event_time') }} as hour_of_day,
    device_key,
    ip_key,
    ip_network_key,
    count(*) as n_events
from {{ ref('stg_events') }}
where event_day between {{ start_day() }} and {{ end_day() }}
group by user_key, event_day, {{ local_hour('event_time') }}, device_key, ip_key, ip_network_key
