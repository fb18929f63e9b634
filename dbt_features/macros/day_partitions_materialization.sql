{#-
  Materialization of every partitioned model: replace the rows of the run's day range
  (vars start_day / end_day, see partition_range.sql), in one transaction.

  * First build: `create table <model> as <select>`.
  * Later runs: `delete from <model> where event_day in the range`, then
    `insert into <model> <select>` straight from the model's query.

  This is the delete+insert contract of the README ("Data contracts"). dbt's built-in incremental
  materialization does the same, but first copies the model's result into a temporary table
  (and then deletes by the days found in it), so every event of the range was written twice:
  the dominant cost of a rebuild of stg_events. Clearing the whole range, rather than only the
  days that still have rows, also makes a rerun exact when a day lost all its rows; a failed
  build rolls back and leaves the old rows in place.

  Schema changes are refused, not silently absorbed: the model's columns must equal the table's
  columns (same names, same order), otherwise the run fails and asks for --full-refresh.

  On Spark (below) the table is Parquet partitioned by event_day and each day of the range is
  replaced by its own `insert overwrite ... partition (event_day = day)`: atomic per day, and exact
  for a day that lost all its rows (its partition is overwritten with none). The model's query
  runs once: over a plain temporary view for one day, over a cached one for a longer range.
-#}
{% materialization day_partitions, adapter='duckdb' %}

    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {%- set rebuild = existing is none or should_full_refresh() -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if rebuild -%}
        {%- if existing is not none -%}
            {{ adapter.drop_relation(existing) }}
        {%- endif -%}
        {%- set build_sql = create_table_as(False, target, sql) -%}
    {%- else -%}
        {%- set model_columns = get_columns_in_query(sql) -%}
        {%- set table_columns = adapter.get_columns_in_relation(existing)
            | map(attribute='name') | list -%}
        {%- if model_columns != table_columns -%}
            {{ exceptions.raise_compiler_error(
                "The columns of model " ~ this ~ " " ~ model_columns ~ " differ from the table's "
                ~ table_columns ~ ": rebuild it with --full-refresh") }}
        {%- endif -%}
        {%- set build_sql -%}
            delete from {{ target }}
            where event_day between {{ start_day() }} and {{ end_day() }};
            insert into {{ target }}
            {{ sql }}
        {%- endset -%}
    {%- endif -%}

    {% call statement('main') -%}
        {{ build_sql }}
    {%- endcall %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target]}) }}

{% endmaterialization %}


{#- Columns in a partitioned Spark table's order: the partition column event_day last. -#}
{% macro _spark_table_order(columns) -%}
    {{- return(columns | reject('equalto', 'event_day') | list + ['event_day']) -}}
{%- endmacro %}

{% materialization day_partitions, adapter='spark' %}

    {%- set existing = load_cached_relation(this) -%}
    {%- set target = this.incorporate(type='table') -%}
    {%- set rebuild = existing is none or should_full_refresh() -%}

    {{ run_hooks(pre_hooks) }}

    {%- if rebuild -%}
        {%- if existing is not none -%}
            {{ adapter.drop_relation(existing) }}
        {%- endif -%}
        {% call statement('main') -%}
            create table {{ target }} using parquet partitioned by (event_day) as
            {{ sql }}
        {%- endcall %}
    {%- else -%}
        {%- set model_columns = get_columns_in_query(sql) -%}
        {%- set table_columns = adapter.get_columns_in_relation(existing)
            | map(attribute='name') | list -%}
        {%- set columns = _spark_table_order(model_columns) -%}
        {%- if columns != table_columns -%}
            {{ exceptions.raise_compiler_error(
                "The columns of model " ~ this ~ " " ~ model_columns ~ " differ from the table's "
                ~ table_columns ~ ": rebuild it with --full-refresh") }}
        {%- endif -%}
        {%- set days = partition_days() -%}
        {%- set result = this.identifier ~ '__range' -%}
        {%- set cache = days | length > 1 -%}
        {% call statement('model_result') -%}
            create or replace temporary view {{ result }} as {{ sql }}
        {%- endcall %}
        {%- if cache %}
            {% call statement('cache_model_result') -%} cache table {{ result }} {%- endcall %}
        {%- endif %}
        {%- for day in days %}
            {% call statement('main' if loop.last else 'day_' ~ loop.index) -%}
                insert overwrite table {{ target }} partition (event_day = '{{ day }}')
                select {{ columns[:-1] | join(', ') }}
                from {{ result }}
                where event_day = date '{{ day }}'
            {%- endcall %}
        {%- endfor %}
        {%- if cache %}
            {% call statement('uncache_model_result') -%} uncache table {{ result }} {%- endcall %}
        {%- endif %}
        {% call statement('drop_model_result') -%} drop view {{ result }} {%- endcall %}
    {%- endif -%}

    {{ run_hooks(post_hooks) }}

    {{ return({'relations': [target]}) }}

{% endmaterialization %}
