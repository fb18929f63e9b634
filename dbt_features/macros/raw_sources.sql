{#-
  Where the models' sources (models/staging/_sources.yml) come from on each engine; run by the
  project's on-run-start hook.

  DuckDB: the Dagster raw_events / event_labels assets load them into the warehouse file; nothing
  to do. Spark: each source table of schema `raw` is (re)declared as an external Parquet table over
  `$ANOMALY_PIPELINE_RAW_PARQUET/<table>/` (a folder or an object-store URI): every Parquet file
  below it, any layout, with the raw table's columns (event_day included). Re-declared on every
  run, so files added since, or a new location, are seen; dropping an external table never deletes
  its files.
-#}
{% macro register_raw_sources() -%}
    {{- return(adapter.dispatch('register_raw_sources', 'dbt_features')()) -}}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set location = env_var('ANOMALY_PIPELINE_RAW_PARQUET') | trim -%}
        {%- for node in graph.sources.values() | selectattr('source_name', 'equalto', 'raw') -%}
            {%- do run_query('create database if not exists ' ~ node.schema) -%}
            {%- do run_query('drop table if exists ' ~ node.schema ~ '.' ~ node.identifier) -%}
            {%- do run_query(
                'create table ' ~ node.schema ~ '.' ~ node.identifier ~ ' using parquet'
                ~ " options (recursiveFileLookup 'true')"
                ~ " location '" ~ location.rstrip('/') ~ '/' ~ node.identifier ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
