{#- Labels of the partition range with the user pseudonymised like stg_events.user_key. -#}
with labels as (

    select distinct user_id, event_day::date as event_day, anomaly_type::varchar as anomaly_type
    from {{ source('raw', 'event_labels') }}
    where event_day between {{ start_day() }} and {{ end_day() }}

)

select pseudonymize(user_id) as user_key, event_day, anomaly_type
from labels
