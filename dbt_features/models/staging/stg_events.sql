{#-
  One row per event of the partition range: typed, deduplicated on event_id, and pseudonymised.
  Raw user_id, device_id, ip and session_id end here; downstream models only see keyed pseudonyms
  (anomaly_pipeline/privacy.py, as SQL functions registered by anomaly_pipeline/dbt_plugin.py).
  user_agent is dropped: it is a fingerprint and no feature needs it.

  An HMAC costs ~1.5 µs of CPU a value even as DuckDB's native SHA-256, so the pseudonym
  functions run over the *distinct* values of the range (1 in 12 to 1 in 30 events on a
  Taobao-like day) and are joined back, not over every event.
-#}
with source_events as {{ not_materialized() }} (

    -- NOT MATERIALIZED (DuckDB): each reference below is then its own columnar scan of the few
    -- columns it needs, instead of one copy of every column of a day held in memory.
    select *
    from {{ source('raw', 'raw_events') }}
    where event_day between {{ start_day() }} and {{ end_day() }}

),

{{ deduplicated_events('source_events') }},

-- Distinct identifiers of the range (read from the source: a dropped duplicate carries the same
-- identifiers as the row kept, so nothing is missed and nothing extra is joined).
user_keys as (
    select user_id, pseudonymize(user_id) as user_key
    from (select distinct user_id from source_events) as users
),

device_keys as (
    select device_id, pseudonymize(device_id) as device_key
    from (select distinct device_id from source_events where device_id is not null) as devices
),

ip_keys as (
    select ip, pseudonymize(ip) as ip_key, ip_network_key(ip) as ip_network_key
    from (select distinct ip from source_events where ip is not null) as ips
),

session_keys as (
    select session_id, pseudonymize(session_id) as session_key
    from (select distinct session_id from source_events where session_id is not null) as sessions
)

select
    cast(events.event_id as {{ type_text() }}) as event_id,
    cast(events.event_time as {{ type_instant() }}) as event_time,
    cast(events.event_day as date) as event_day,
    user_keys.user_key,
    session_keys.session_key,
    cast(events.event_type as {{ type_text() }}) as event_type,
    cast(events.item_id as {{ type_text() }}) as item_id,
    cast(events.category_id as {{ type_text() }}) as category_id,
    cast(events.shop_id as {{ type_text() }}) as shop_id,
    cast(events.amount as double) as amount,
    cast(events.quantity as bigint) as quantity,
    device_keys.device_key,
    ip_keys.ip_key,
    ip_keys.ip_network_key,
    cast(events.channel as {{ type_text() }}) as channel,
    cast(events.rating as integer) as rating
from deduplicated as events
inner join user_keys using (user_id)
left join device_keys using (device_id)
left join ip_keys using (ip)
left join session_keys using (session_id)
