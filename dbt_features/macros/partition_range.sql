{#-
  The partition range a run (re)builds, from the required vars start_day / end_day (inclusive ISO
  dates), as SQL date literals. Parsing (`dbt parse`, the Dagster manifest) renders models
  without the vars, so they are only required when SQL is really executed.
-#}
{% macro _partition_day_text(name) -%}
    {%- set value = var(name) -%}
    {%- if value is none -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "dbt var '" ~ name ~ "' is required: the inclusive ISO date range to build, e.g. "
                ~ "--vars '{start_day: 2024-01-01, end_day: 2024-01-07}'") }}
        {%- endif -%}
        {{- return("1970-01-01") -}}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if not modules.re.match("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", text) -%}
        {{ exceptions.raise_compiler_error(
            "dbt var '" ~ name ~ "' must be an ISO date YYYY-MM-DD, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{- return(text) -}}
{%- endmacro %}

{% macro start_day() -%}
    {{- return("date '" ~ _partition_day_text('start_day') ~ "'") -}}
{%- endmacro %}

{% macro end_day() -%}
    {%- set start, end = _partition_day_text('start_day'), _partition_day_text('end_day') -%}
    {%- if end < start -%}
        {{ exceptions.raise_compiler_error(
            "dbt var end_day (" ~ end ~ ") is before start_day (" ~ start ~ ")") }}
    {%- endif -%}
    {{- return("date '" ~ end ~ "'") -}}
{%- endmacro %}

{#- The ISO dates of every day of the range, in order. -#}
{% macro partition_days() -%}
    {%- set start = modules.datetime.date.fromisoformat(_partition_day_text('start_day')) -%}
    {%- set end = modules.datetime.date.fromisoformat(_partition_day_text('end_day')) -%}
    {%- set days = [] -%}
    {%- for offset in range((end - start).days + 1) -%}
        {%- do days.append((start + modules.datetime.timedelta(days=offset)).isoformat()) -%}
    {%- endfor -%}
    {{- return(days) -}}
{%- endmacro %}

{#- The first day that the history features of the range look back to. -#}
{% macro history_start_day() -%}
    {{- return(add_days(start_day(), -catalogue().history_days)) -}}
{%- endmacro %}

{#- The first day that the account features of the range look back to. -#}
{% macro account_start_day() -%}
    {{- return(add_days(start_day(), -catalogue().account_window_days)) -}}
{%- endmacro %}
