{#-
  The distinct (device, IP, IP network) combinations each user acted from each day, with their
  event counts. Small next to the events, so the mart reads earlier days from here for the
  "new device / network" and "users per device / network over the window" features instead of
  re-scanning a week of events.
-#}
select
    user_key,
    event_day,
    device_key,
    ip_key,
    ip_network_key,
    count(*) as n_events
from {{ ref('stg_events') }}
where event_day between {{ start_day() }} and {{ end_day() }}
group by user_key, event_day, device_key, ip_key, ip_network_key
