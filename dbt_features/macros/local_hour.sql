{#-
  Hour of the day (0–23) of a UTC timestamp column in the source's local time (var
  source_timezone, an IANA name; partitions stay UTC days). UTC keeps the epoch arithmetic:
  hour() of a TIMESTAMPTZ goes through ICU, about 10x slower, and other zones need it anyway
  (daylight saving). The name is checked because it is spliced into the SQL. On Spark the session
  time zone is UTC (anomaly_pipeline/dbt_spark.py), which from_utc_timestamp relies on.
-#}
{% macro local_hour(column) -%}
  {%- set tz = var('source_timezone', 'UTC') -%}
  {%- if not modules.re.fullmatch('[A-Za-z0-9_+/-]+', tz) -%}
    {{ exceptions.raise_compiler_error("var source_timezone must be an IANA timezone name such as 'Asia/Shanghai', got '" ~ tz ~ "'") }}
  {%- endif -%}
  {{- return(adapter.dispatch('local_hour', 'dbt_features')(column, tz)) -}}
{%- endmacro %}

{% macro duckdb__local_hour(column, tz) -%}
  {%- if tz == 'UTC' -%}
    (epoch_us({{ column }}) % {{ 24 * 3600 * 1000000 }}) // {{ 3600 * 1000000 }}
  {%- else -%}
    hour(timezone('{{ tz }}', {{ column }}))
  {%- endif -%}
{%- endmacro %}

{% macro spark__local_hour(column, tz) -%}
  {%- if tz == 'UTC' -%}
    (pmod(unix_micros({{ column }}), {{ 24 * 3600 * 1000000 }}) div {{ 3600 * 1000000 }})
  {%- else -%}
    hour(from_utc_timestamp({{ column }}, '{{ tz }}'))
  {%- endif -%}
{%- endmacro %}
