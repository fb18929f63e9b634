{#-
  Fails with one row per duplicated combination of the given columns (NULLs compare equal, as in
  GROUP BY). A local stand-in for dbt_utils' test: the project must build offline, without
  packages.
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns = combination_of_columns | join(', ') -%}
    select {{ columns }}, count(*) as n_rows
    from {{ model }}
    group by {{ columns }}
    having count(*) > 1
{% endtest %}
