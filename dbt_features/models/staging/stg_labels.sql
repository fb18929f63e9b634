{#- Labels of the partition range with the user pseudonymised like stg_events.user_key. -#}
with labels as (

    select distinct
        user_id,
        cast(event_day as date) as event_day,
        cast(anomaly_type as {{ type_text() }}) as anomaly_type
    from {{ source('raw', 'event_labels') }}
    where event_day between {{ start_day() }} and {{ end_day() }}

)

select pseudonymize(user_id) as user_key, event_day, anomaly_type
from labels
