{# Generic test: the combination of columns is unique (no dbt_utils: packages cannot be downloaded). #}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}

{# Data tests of an incremental model check the rows of its last load only: rows landed after the watermark
   the model held before that load (ops.dbt_load, written by the pre-hook `record_load`). A full build or
   --full-refresh records no watermark, so every row is checked then; `--vars '{hutong_full_tests: true}'`
   checks every row of every model. Keys stay unique over the whole table because delete+insert replaces the
   held rows of every key it loads. Root-project override of dbt's `get_where_subquery`, which wraps the model
   of every generic test (the `to` side of `relationships` is never filtered). #}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set scope = last_load_filter(relation) -%}
    {%- if where or scope -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where or 'true' }}{% if scope %} and {{ scope }}{% endif %}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{# The filter "landed in the model's last load" when `relation` is an incremental model, or a view whose config
   names the incremental model it projects row for row (`meta: {last_load_of: <model>}`, e.g. cdr__diagnosis of
   cdr__encounter: its rows carry that model's `_ingested_at`); '' otherwise. #}
{% macro last_load_filter(relation) -%}
    {%- if not execute or var('hutong_full_tests', false) or relation.identifier is none -%}{{ return('') }}{%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and node.alias == relation.identifier and node.schema == relation.schema
              and (node.config.materialized == 'incremental' or node.config.meta.get('last_load_of')) -%}
            {{ return("_ingested_at > cast('" ~ last_loaded_after(node.config.meta.get('last_load_of') or relation.identifier)
                      ~ "' as timestamp)") }}
        {%- endif -%}
    {%- endfor -%}
    {{ return('') }}
{%- endmacro %}

{# The watermark a model held before its last load (ops.dbt_load), read when the test runs and written as a constant
   (a literal prunes row groups; the subquery it replaces scanned every row's landing time); 1900-01-01 after a full
   build. #}
{% macro last_loaded_after(model_name) -%}
    {%- set log = adapter.get_relation(database=target.database, schema='ops', identifier='dbt_load') -%}
    {%- set held = none -%}
    {%- if log is not none -%}
        {%- set held = run_query(loaded_after_sql(model_name)).columns[0].values()[0] -%}
    {%- endif -%}
    {{ return(held if held is not none else '1900-01-01') }}
{%- endmacro %}

{# ops.dbt_load: per incremental model and load, the watermark it held before the load (NULL: a full build). #}
{% macro hutong_create_load_log() -%}
    create schema if not exists ops;
    create table if not exists ops.dbt_load (model_name varchar, loaded_after timestamp, recorded_at timestamp);
    create table if not exists ops.empi_change (change_id varchar, model_name varchar, org_code varchar,
                                                empi_id varchar, row_count bigint, changed_at timestamp)
{%- endmacro %}

{# Pre-hook of every model: an incremental model records the watermark it holds before this load. #}
{% macro record_load() -%}
    {%- if config.get('materialized') == 'incremental' -%}
    insert into ops.dbt_load (model_name, loaded_after, recorded_at)
    select '{{ this.identifier }}',
           {% if is_incremental() %}(select max(wm._ingested_at) from {{ this }} as wm){% else %}cast(null as timestamp){% endif %},
           current_timestamp
    {%- endif -%}
{%- endmacro %}
