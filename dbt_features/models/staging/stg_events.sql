{#-
  One row per event of the partition range: typed, deduplicated on event_id, and pseudonymised.
  Raw user_id, device_id, ip and session_id end here; downstream models only see keyed pseudonyms
  (anomaly_pipeline/privacy.py, as SQL functions registered by anomaly_pipeline/dbt_plugin.py).
  user_agent is dropped: it is a fingerprint and no feature needs it.

  An HMAC costs ~1.5 µs of CPU a value even as DuckDB's native SHA-256, so the pseudonym
  functions run over the *distinct* values of the range (1 in 12 to 1 in 30 events on a
  Taobao-like day) and are joined back, not over every event.
-#}
with source_events as not materialized (

    -- NOT MATERIALIZED: each reference below is then its own columnar scan of the few columns it
    -- needs, instead of one copy of every column of a day held in memory.
    select *
    from {{ source('raw', 'raw_events') }}
    where event_day between {{ start_day() }} and {{ end_day() }}

),

duplicate_candidates as (

    -- Sources deliver unique event_ids almost always, and a window over every event_id of a day
    -- would cost a full sort: find the (rare) candidates by a 64-bit hash of the id instead.
    -- Rows whose hash is unique in their day are certainly unique.
    select event_day, hash(event_id) as id_hash
    from source_events
    group by event_day, id_hash
    having count(*) > 1

),

deduplicated as (

    select *
    from source_events
    anti join duplicate_candidates
        on source_events.event_day = duplicate_candidates.event_day
        and hash(source_events.event_id) = duplicate_candidates.id_hash

    union all

    -- Ingest keeps event ids unique per day (raw_events' pandera contract); should a
    -- writer other than raw_events repeat one, keep the latest load. Per day: ids may repeat on
    -- other days, and a one-day run and a multi-day run over the same days must agree.
    select *
    from source_events
    semi join duplicate_candidates
        on source_events.event_day = duplicate_candidates.event_day
        and hash(source_events.event_id) = duplicate_candidates.id_hash
    qualify row_number() over (
        partition by event_day, event_id order by loaded_at desc, source_file desc
    ) = 1

),

-- Distinct identifiers of the range (read from the source: a dropped duplicate carries the same
-- identifiers as the row kept, so nothing is missed and nothing extra is joined).
user_keys as (
    select user_id, pseudonymize(user_id) as user_key
    from (select distinct user_id from source_events)
),

device_keys as (
    select device_id, pseudonymize(device_id) as device_key
    from (select distinct device_id from source_events where device_id is not null)
),

ip_keys as (
    select ip, pseudonymize(ip) as ip_key, ip_network_key(ip) as ip_network_key
    from (select distinct ip from source_events where ip is not null)
),

session_keys as (
    select session_id, pseudonymize(session_id) as session_key
    from (select distinct session_id from source_events where session_id is not null)
)

select
    events.event_id::varchar as event_id,
    events.event_time::timestamptz as event_time,
    events.event_day::date as event_day,
    user_keys.user_key,
    session_keys.session_key,
    events.event_type::varchar as event_type,
    events.item_id::varchar as item_id,
    events.category_id::varchar as category_id,
    events.shop_id::varchar as shop_id,
    events.amount::double as amount,
    events.quantity::bigint as quantity,
    device_keys.device_key,
    ip_keys.ip_key,
    ip_keys.ip_network_key,
    events.channel::varchar as channel,
    events.rating::integer as rating
from deduplicated as events
inner join user_keys using (user_id)
left join device_keys using (device_id)
left join ip_keys using (ip)
left join session_keys using (session_id)
