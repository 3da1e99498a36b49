{# Cross-database helpers: the same model SQL runs on DuckDB and PostgreSQL. #}

{# Functions PostgreSQL needs for lenient parsing (DuckDB has try_strptime built in). #}
{% macro hutong_create_functions() -%}
  {%- if target.type == 'postgres' -%}
    create schema if not exists ops;
    create or replace function ops.hutong_try_date(v text) returns date language plpgsql immutable as $fn$
    begin
      if v is null or btrim(v) = '' then return null; end if;
      if v ~ '^\d{8}$' then return to_date(v, 'YYYYMMDD'); end if;
      if v ~ '^\d{4}-\d{2}-\d{2}' then return substr(v, 1, 10)::date; end if;
      return null;
    exception when others then return null;
    end $fn$;
    create or replace function ops.hutong_try_timestamp(v text) returns timestamp language plpgsql immutable as $fn$
    begin
      if v is null or btrim(v) = '' then return null; end if;
      if v ~ '^\d{14}$' then return to_timestamp(v, 'YYYYMMDDHH24MISS')::timestamp; end if;
      if v ~ '^\d{12}$' then return to_timestamp(v, 'YYYYMMDDHH24MI')::timestamp; end if;
      if v ~ '^\d{8}$' then return to_date(v, 'YYYYMMDD')::timestamp; end if;
      if v ~ '^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$' then return v::timestamp; end if;
      return null;
    exception when others then return null;
    end $fn$;
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{# A date from text in YYYYMMDD or YYYY-MM-DD[...] form; NULL when it is not a real date. #}
{% macro try_date(expr) -%}
  {{ return(adapter.dispatch('try_date', 'hutong')(expr)) }}
{%- endmacro %}
{% macro duckdb__try_date(expr) -%}
  cast(coalesce(
    try_strptime(nullif(trim({{ expr }}), ''), '%Y%m%d'),
    try_strptime(left(nullif(trim({{ expr }}), ''), 10), '%Y-%m-%d')
  ) as date)
{%- endmacro %}
{% macro postgres__try_date(expr) -%}
  ops.hutong_try_date({{ expr }})
{%- endmacro %}

{# A timestamp from text (YYYY-MM-DD HH:MM[:SS], ISO T, YYYYMMDDHHMMSS, YYYYMMDD); NULL when unparseable. #}
{% macro try_timestamp(expr) -%}
  {{ return(adapter.dispatch('try_timestamp', 'hutong')(expr)) }}
{%- endmacro %}
{% macro duckdb__try_timestamp(expr) -%}
  cast(coalesce(
    try_strptime(nullif(trim({{ expr }}), ''), '%Y-%m-%d %H:%M:%S'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y-%m-%dT%H:%M:%S'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y-%m-%d %H:%M'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y-%m-%d %H:%M:%S.%f'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y%m%d%H%M%S'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y%m%d%H%M'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y%m%d'),
    try_strptime(nullif(trim({{ expr }}), ''), '%Y-%m-%d')
  ) as timestamp)
{%- endmacro %}
{% macro postgres__try_timestamp(expr) -%}
  ops.hutong_try_timestamp({{ expr }})
{%- endmacro %}

{# Stable text key from parts joined with '|'. #}
{% macro key(parts) -%}
  {%- for p in parts -%}coalesce(cast({{ p }} as varchar), ''){% if not loop.last %} || '|' || {% endif %}{%- endfor -%}
{%- endmacro %}

{# The current state of an append-only raw table: the latest version of each (institution, source key)
   by source update time, then ingest time; keys whose latest version is a soft delete are dropped. #}
{% macro current_rows(relation) -%}
    select * from (
        select
            *,
            row_number() over (
                partition by _org_code, _source_key
                order by _source_updated_at desc nulls last, _ingested_at desc, _record_hash
            ) as _version_rank
        from {{ relation }}
    ) as versions
    where _version_rank = 1 and _op <> 'D'
{%- endmacro %}
