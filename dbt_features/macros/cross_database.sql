{#-
  The SQL that differs between the engines the project builds on (DuckDB, the default, and Spark
  through dbt-spark), one adapter.dispatch macro per construct: models call these and stay the same
  on every engine. default__ is the portable spelling where one exists (a warehouse adapter gets
  it); duckdb__ keeps DuckDB's faster native form; spark__ is Spark SQL.

  New model SQL should use these (or dbt's own cross-database macros where they exist) instead of
  an engine's dialect: `cast(x as ...)` instead of `x::...`, conditional aggregates through
  agg_where / count_where instead of FILTER, epoch_us / add_days / days_between instead of
  date arithmetic.
-#}

{#- Microseconds since the Unix epoch of a timestamp (bigint). -#}
{% macro epoch_us(column) -%}
    {{- return(adapter.dispatch('epoch_us', 'dbt_features')(column)) -}}
{%- endmacro %}

{% macro duckdb__epoch_us(column) -%}
    epoch_us({{ column }})
{%- endmacro %}

{% macro spark__epoch_us(column) -%}
    unix_micros({{ column }})
{%- endmacro %}

{#- `agg(expression)` over the rows where `condition` holds (NULL when none, as an aggregate). -#}
{% macro agg_where(agg, expression, condition) -%}
    {{- return(adapter.dispatch('agg_where', 'dbt_features')(agg, expression, condition)) -}}
{%- endmacro %}

{% macro default__agg_where(agg, expression, condition) -%}
    {{ agg }}(case when {{ condition }} then {{ expression }} end)
{%- endmacro %}

{% macro duckdb__agg_where(agg, expression, condition) -%}
    {{ agg }}({{ expression }}) filter (where {{ condition }})
{%- endmacro %}

{#- The number of rows where `condition` holds (0 when none). -#}
{% macro count_where(condition) -%}
    {{- return(adapter.dispatch('count_where', 'dbt_features')(condition)) -}}
{%- endmacro %}

{% macro default__count_where(condition) -%}
    count(case when {{ condition }} then 1 end)
{%- endmacro %}

{% macro duckdb__count_where(condition) -%}
    count(*) filter (where {{ condition }})
{%- endmacro %}

{#- A date `days` days after `day` (before it when negative). -#}
{% macro add_days(day, days) -%}
    {{- return(adapter.dispatch('add_days', 'dbt_features')(day, days)) -}}
{%- endmacro %}

{% macro duckdb__add_days(day, days) -%}
    ({{ day }} + {{ days }})
{%- endmacro %}

{% macro spark__add_days(day, days) -%}
    date_add({{ day }}, {{ days }})
{%- endmacro %}

{#- Whole days from date `earlier` to date `later` (an integer). -#}
{% macro days_between(later, earlier) -%}
    {{- return(adapter.dispatch('days_between', 'dbt_features')(later, earlier)) -}}
{%- endmacro %}

{% macro duckdb__days_between(later, earlier) -%}
    ({{ later }} - {{ earlier }})
{%- endmacro %}

{% macro spark__days_between(later, earlier) -%}
    datediff({{ later }}, {{ earlier }})
{%- endmacro %}

{#- The median of a numeric column (interpolated for an even count), usable over a window frame. -#}
{% macro median(expression) -%}
    {{- return(adapter.dispatch('median', 'dbt_features')(expression)) -}}
{%- endmacro %}

{% macro default__median(expression) -%}
    median({{ expression }})
{%- endmacro %}

{#- Spark's median() refuses a window frame; percentile(x, 0.5) is the same value and accepts one. -#}
{% macro spark__median(expression) -%}
    percentile({{ expression }}, 0.5)
{%- endmacro %}

{#- `not materialized` for a CTE read several times: DuckDB then scans it per reference. -#}
{% macro not_materialized() -%}
    {{- return(adapter.dispatch('not_materialized', 'dbt_features')()) -}}
{%- endmacro %}

{% macro default__not_materialized() -%}
{%- endmacro %}

{% macro duckdb__not_materialized() -%}
    not materialized
{%- endmacro %}

{#- Text type: DuckDB's varchar, Spark's string. -#}
{% macro type_text() -%}
    {{- return(adapter.dispatch('type_text', 'dbt_features')()) -}}
{%- endmacro %}

{% macro default__type_text() -%}
    varchar
{%- endmacro %}

{% macro spark__type_text() -%}
    string
{%- endmacro %}

{#- An instant in time, shown in the session's time zone (UTC): DuckDB's timestamptz, Spark's timestamp. -#}
{% macro type_instant() -%}
    {{- return(adapter.dispatch('type_instant', 'dbt_features')()) -}}
{%- endmacro %}

{% macro default__type_instant() -%}
    timestamptz
{%- endmacro %}

{% macro spark__type_instant() -%}
    timestamp
{%- endmacro %}
