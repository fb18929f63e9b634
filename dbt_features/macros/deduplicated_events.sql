{#-
  The `deduplicated` CTE of stg_events (preceded by the CTEs it needs): the rows of
  `source_events` with one row per (event_day, event_id), the latest load winning (loaded_at, then
  source_file). Per day: ids may repeat on other days, and a one-day run and a multi-day run over
  the same days must agree. Rows may carry extra columns; stg_events selects its own.
-#}
{% macro deduplicated_events(source_events) -%}
    {{- return(adapter.dispatch('deduplicated_events', 'dbt_features')(source_events)) -}}
{%- endmacro %}

{#- Portable: one window over every event id of the range. -#}
{% macro default__deduplicated_events(source_events) -%}
deduplicated as (

    select *
    from (
        select
            *,
            row_number() over (
                partition by event_day, event_id order by loaded_at desc, source_file desc
            ) as delivery_rank
        from {{ source_events }}
    ) as ranked
    where delivery_rank = 1

)
{%- endmacro %}

{% macro duckdb__deduplicated_events(source_events) -%}
duplicate_candidates as (

    -- Sources deliver unique event_ids almost always, and a window over every event_id of a day
    -- would cost a full sort: find the (rare) candidates by a 64-bit hash of the id instead.
    -- Rows whose hash is unique in their day are certainly unique.
    select event_day, hash(event_id) as id_hash
    from {{ source_events }}
    group by event_day, id_hash
    having count(*) > 1

),

deduplicated as (

    select *
    from {{ source_events }}
    anti join duplicate_candidates
        on {{ source_events }}.event_day = duplicate_candidates.event_day
        and hash({{ source_events }}.event_id) = duplicate_candidates.id_hash

    union all

    -- Ingest keeps event ids unique per day (raw_events' pandera contract); should a
    -- writer other than raw_events repeat one, keep the latest load.
    select *
    from {{ source_events }}
    semi join duplicate_candidates
        on {{ source_events }}.event_day = duplicate_candidates.event_day
        and hash({{ source_events }}.event_id) = duplicate_candidates.id_hash
    qualify row_number() over (
        partition by event_day, event_id order by loaded_at desc, source_file desc
    ) = 1

)
{%- endmacro %}
