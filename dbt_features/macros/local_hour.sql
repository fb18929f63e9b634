{#-
  Hour of the day (0–23) of a UTC timestamp column in the source's local time (var
  source_timezone, an IANA name; partitions stay UTC days). UTC keeps the epoch arithmetic:
  hour() of a TIMESTAMPTZ goes through ICU, about 10x slower, and other zones need it anyway
  (daylight saving). The name is checked because it is spliced into the SQL.
-#}
{% macro local_hour(column) -%}
  {%- set tz = var('source_timezone', 'UTC') -%}
  {%- if not modules.re.fullmatch('[A-Za-z0-9_+/-]+', tz) -%}
    {{ exceptions.raise_compiler_error("var source_timezone must be an IANA timezone name such as 'Asia/Shanghai', got '" ~ tz ~ "'") }}
  {%- endif -%}
  {%- if tz == 'UTC' -%}
    (epoch_us({{ column }}) % {{ 24 * 3600 * 1000000 }}) // {{ 3600 * 1000000 }}
  {%- else -%}
    hour(timezone('{{ tz }}', {{ column }}))
  {%- endif -%}
{%- endmacro %}
