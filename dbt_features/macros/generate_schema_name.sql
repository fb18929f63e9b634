{#-
  Use a model's custom schema verbatim. dbt's default prefixes it with the target schema
  ("main_features"), but the Dagster assets and other readers address the tables as
  features.<model> (README "Data contracts").
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
