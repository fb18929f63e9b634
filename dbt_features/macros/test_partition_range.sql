{#-
  The relation a data test reads: dbt's own, filtered by the test's `where` config. dbt_project.yml
  sets `where: __partition_range__` for every data test of the project, which becomes the run's
  day range here (macros/partition_range.sql): a run tests the rows it (re)built, not the whole
  history, so a test's cost does not grow with every day stored. A range's rows were tested by
  the run that built them. (dbt renders `where` in dbt_project.yml without the project's macros;
  this override of dbt's get_where_subquery is its documented way to use them.)
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get("where") -%}
    {%- if where -%}
        {%- set range = "event_day between " ~ start_day() ~ " and " ~ end_day() -%}
        {%- set where = where | replace("__partition_range__", range) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
