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
      -- ISO 8601 with an offset (FHIR dateTime): the instant as wall time in the region's time zone
      if v ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$' then
        return v::timestamptz at time zone '{{ var("local_time_zone", "Asia/Shanghai") }}';
      end if;
      return null;
    exception when others then return null;
    end $fn$;
    create or replace function ops.hutong_try_decimal(v text) returns numeric language plpgsql immutable as $fn$
    begin
      if v is null or btrim(v) = '' then return null; end if;
      return btrim(v)::numeric;
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

{# A timestamp from text (YYYY-MM-DD HH:MM[:SS], ISO T, YYYYMMDDHHMMSS, YYYYMMDD); NULL when unparseable. DuckDB tries
   the formats of one list in order (one call, the text trimmed once). #}
{% macro try_timestamp(expr) -%}
  {{ return(adapter.dispatch('try_timestamp', 'hutong')(expr)) }}
{%- endmacro %}
{% macro duckdb__try_timestamp(expr) -%}
  cast(coalesce(
    try_strptime(nullif(trim({{ expr }}), ''), ['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M',
        '%Y-%m-%d %H:%M:%S.%f', '%Y%m%d%H%M%S', '%Y%m%d%H%M', '%Y%m%d', '%Y-%m-%d']),
    {{ iso_offset_timestamp(expr) }}
  ) as timestamp)
{%- endmacro %}
{# ISO 8601 with an offset or Z (FHIR dateTime, e.g. 2026-10-06T18:55:00+08:00): the instant as wall time in the
   region's time zone (var local_time_zone, default Asia/Shanghai), like every other source's local times. #}
{% macro iso_offset_timestamp(expr) -%}
  (try_strptime(regexp_replace(nullif(trim({{ expr }}), ''), 'Z$', '+00:00'),
                ['%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%dT%H:%M:%S.%f%z', '%Y-%m-%dT%H:%M%z'])
   at time zone '{{ var("local_time_zone", "Asia/Shanghai") }}')
{%- endmacro %}
{% macro postgres__try_timestamp(expr) -%}
  ops.hutong_try_timestamp({{ expr }})
{%- endmacro %}

{# Stable text key from parts joined with '|'. #}
{% macro key(parts) -%}
  {%- for p in parts -%}coalesce(cast({{ p }} as varchar), ''){% if not loop.last %} || '|' || {% endif %}{%- endfor -%}
{%- endmacro %}

{# The current state of an append-only raw table: the latest version of each (institution, source key)
   by source update time, then ingest time; keys whose latest version is a soft delete are dropped.
   Used as `from ({{ current_rows(source('raw', 'x')) }}) as r`. In an incremental staging model only the keys
   with a version landed after the model's watermark are re-derived, and a latest version that is a delete is
   kept so that delete+insert replaces the held row; the model's post-hook `drop_deleted_rows` then removes it.
   A full build ranks only the keys that have more than one version (most have one: ranking them all sorted
   every wide raw row); the others are their own latest version. #}
{% macro current_rows(relation) -%}
    {%- if is_incremental() %}
    select * from (
        select *, {{ version_rank() }} as _version_rank
        from {{ relation }} as v
        where exists (
            select 1 from {{ relation }} as n
            where n._ingested_at > {{ incremental_watermark() }}
              and n._org_code = v._org_code and n._source_key = v._source_key
        )
    ) as versions
    where _version_rank = 1
    {%- else %}
    with versioned as (
        select _org_code, _source_key from {{ relation }} group by _org_code, _source_key having count(*) > 1
    )
    select * from (
        select v.*, 1 as _version_rank
        from {{ relation }} as v
        where not exists (
            select 1 from versioned as k where k._org_code = v._org_code and k._source_key = v._source_key
        )
        union all
        select * from (
            select v.*, {{ version_rank() }} as _version_rank
            from {{ relation }} as v
            where exists (
                select 1 from versioned as k where k._org_code = v._org_code and k._source_key = v._source_key
            )
        ) as ranked
        where _version_rank = 1
    ) as versions
    where _op <> 'D'
    {%- endif %}
{%- endmacro %}

{# 1 for the latest version of a row's (institution, source key): newest source update, then newest landing. #}
{% macro version_rank() -%}
    row_number() over (
        partition by _org_code, _source_key
        order by _source_updated_at desc nulls last, _ingested_at desc, _record_hash
    )
{%- endmacro %}

{# The lineage every staging row carries from its raw version: source key, content hash, batch, landing and
   source update times, operation (I/U/D) and origin. #}
{% macro lineage_columns(alias) -%}
    {{ alias }}._source_key,
    {{ alias }}._record_hash,
    {{ alias }}._batch_id,
    {{ alias }}._ingested_at,
    {{ alias }}._source_updated_at,
    {{ alias }}._op,
    {{ alias }}._origin
{%- endmacro %}

{# The newest landing time an incremental model already holds (its watermark). Read when the model runs and
   written as a constant: a filter on a literal prunes row groups and gives the planner its selectivity, where a
   scalar subquery did neither (the incremental batch queries took twice as long). #}
{% macro incremental_watermark() -%}
    {%- if execute and is_incremental() -%}
        {%- set held = run_query("select max(_ingested_at) from " ~ this).columns[0].values()[0] -%}
        cast('{{ held if held is not none else "1900-01-01" }}' as timestamp)
    {%- else -%}
        (select coalesce(max(wm._ingested_at), cast('1900-01-01' as timestamp)) from {{ this }} as wm)
    {%- endif -%}
{%- endmacro %}

{# Post-hook of an incremental staging model: a key whose latest version is a soft delete leaves the model. #}
{% macro drop_deleted_rows() -%}
    delete from {{ this }} where _op = 'D'
{%- endmacro %}

{# Decoding joins: a model selects `<alias>.std_code` (the national code of a local value) or `<alias>.name` (the
   national name of a national code) and adds the join after its FROM. A left join on the seed's key, not a
   correlated subquery per value: DuckDB decorrelates each subquery into a pass over the whole intermediate result
   and PostgreSQL runs it per row. The seeds' unique tests (value map: source_system + local_code; code table: code)
   keep one match per row, as the subquery did. #}

{# The approved row of a value-map seed for the value's source system (proposed rows wait for review and decode to
   NULL; cdr__unmapped_code lists them). #}
{% macro decode_join(alias, mapping, system_expr, value_expr) -%}
left join {{ ref(mapping) }} as {{ alias }}
    on {{ alias }}.review_status = 'approved' and {{ alias }}.source_system = {{ system_expr }}
    and {{ alias }}.local_code = nullif(trim(cast({{ value_expr }} as varchar)), '')
{%- endmacro %}

{# The row of a code-table seed for a national code. #}
{% macro code_join(alias, code_table, code_expr) -%}
left join {{ ref(code_table) }} as {{ alias }} on {{ alias }}.code = {{ code_expr }}
{%- endmacro %}

{# A trimmed text value, NULL when blank. #}
{% macro clean(expr) -%}
    nullif(trim(cast({{ expr }} as varchar)), '')
{%- endmacro %}

{# A decimal from text; NULL when it is not a number. #}
{% macro try_decimal(expr) -%}
  {{ return(adapter.dispatch('try_decimal', 'hutong')(expr)) }}
{%- endmacro %}
{% macro duckdb__try_decimal(expr) -%}
  try_cast(nullif(trim(cast({{ expr }} as varchar)), '') as decimal(18, 4))
{%- endmacro %}
{% macro postgres__try_decimal(expr) -%}
  ops.hutong_try_decimal(cast({{ expr }} as varchar))
{%- endmacro %}

{# The HIS encounter key (org|table:id, as stg_his__encounter) of a row that names its encounter by local id:
   vendor_a keeps outpatient (MZ_GHXX) and inpatient (ZY_BAXX) in separate tables; vendor_b has one `visit`. #}
{% macro his_encounter_key(org, system, encounter_id, inpatient_expr) -%}
    case when {{ encounter_id }} is null then null
         when {{ system }} = 'HIS-B' then {{ org }} || '|visit:' || {{ encounter_id }}
         when {{ inpatient_expr }} then {{ org }} || '|ZY_BAXX:' || {{ encounter_id }}
         else {{ org }} || '|MZ_GHXX:' || {{ encounter_id }} end
{%- endmacro %}

{# Incremental watermark filter: rows landed after the newest `_ingested_at` already in the model. #}
{% macro after_watermark(column='_ingested_at') -%}
    {%- if is_incremental() -%}
    where {{ column }} > {{ incremental_watermark() }}
    {%- endif -%}
{%- endmacro %}

{# Post-hook of an incremental CDR model: drop rows whose raw key has a newer delete version (_op = 'D')
   than the version the model holds. A key re-inserted after its delete carries a newer version and stays. #}
{% macro drop_deleted(key_column, raw_relation) -%}
    delete from {{ this }}
    where {{ key_column }} in (
        select d._org_code || '|' || d._source_key
        from {{ raw_relation }} as d
        where d._op = 'D'
          and exists (
            select 1 from {{ this }} as t
            where t.{{ key_column }} = d._org_code || '|' || d._source_key
              and (d._source_updated_at > t._source_updated_at
                   or (d._source_updated_at = t._source_updated_at and d._ingested_at > t._ingested_at))
          )
    )
{%- endmacro %}

{# Post-hook of an incremental CDR model read from one staging model: drop rows whose key has left it (staging applies
   the raw deletes). An anti-join on the key, cheap beside rebuilding the table. #}
{% macro drop_missing(key_column, upstream, upstream_key) -%}
    delete from {{ this }}
    where not exists (
        select 1 from {{ upstream }} as u where u.{{ upstream_key }} = {{ this }}.{{ key_column }}
    )
{%- endmacro %}

{# Post-hook of an incremental CDR or health-record model: re-point empi_id at the master patient index's current
   answer (merges, splits and links made after the row was built); `system` names a fixed source system (public
   health: 'PH'). The rows to re-point are found once (`repoint_empi`). #}
{% macro refresh_empi(system_column, local_id_column, system=none) -%}
    {%- set changed -%}
    select t.{{ config.get('unique_key') }} as row_key, t.org_code, x.empi_id
    from {{ this }} as t
    join {{ source('mpi', 'xref') }} as x
      on x.org_code = t.org_code
     and x.source_system = {% if system %}'{{ system }}'{% else %}t.{{ system_column }}{% endif %}
     and x.local_id = t.{{ local_id_column }}
    where t.empi_id is null or t.empi_id <> x.empi_id
    {%- endset -%}
    {{ repoint_empi(changed) }}
{%- endmacro %}

{# Re-point the rows `changed_sql` names (row_key: the model's unique key, org_code, empi_id: the new id), after
   logging per dbt invocation, model, institution and new EMPI id how many they are in ops.empi_change. Feeds read
   that log as they read ingest batches: the records showing a re-pointed person are examined again
   (marts.delivery), since their rows keep their raw batch. All in the model's transaction. #}
{% macro repoint_empi(changed_sql) -%}
    {%- set changed = 'empi_changed__' ~ this.identifier -%}
    drop table if exists {{ changed }};
    create temp table {{ changed }} as {{ changed_sql }};
    insert into ops.empi_change (change_id, model_name, org_code, empi_id, row_count, changed_at)
    select '{{ invocation_id }}', '{{ this.schema }}.{{ this.identifier }}', c.org_code, c.empi_id, count(*),
           current_timestamp
    from {{ changed }} as c
    group by c.org_code, c.empi_id;
    update {{ this }} as t set empi_id = c.empi_id
    from {{ changed }} as c
    where c.row_key = t.{{ config.get('unique_key') }};
    drop table {{ changed }}
{%- endmacro %}

{# Local codes of one staging column that have no approved mapping (see cdr__unmapped_code). #}
{% macro unmapped_codes(model, domain, mapping, source_column, code_column) -%}
    select
        s.org_code,
        s.source_system,
        '{{ domain }}' as domain,
        '{{ mapping }}' as mapping_seed,
        cast(s.{{ source_column }} as varchar) as local_code,
        min(s._ingested_at) as first_seen_at,
        max(s._ingested_at) as last_seen_at,
        count(*) as row_count
    from {{ ref(model) }} as s
    where s.{{ source_column }} is not null and trim(cast(s.{{ source_column }} as varchar)) <> ''
      and s.{{ code_column }} is null
    group by s.org_code, s.source_system, cast(s.{{ source_column }} as varchar)
{%- endmacro %}

{# Post-hook of cdr__lab_report: re-point empi_id at the MPI's current answer for the LIS identity, else the HIS
   identity the LIS named (as the model derives it). #}
{% macro refresh_lab_report_empi() -%}
    {%- set changed -%}
    select n.lab_report_key as row_key, n.org_code, n.empi_id
    from (
        select r.lab_report_key, r.org_code, r.empi_id as held, coalesce(xl.empi_id, xh.empi_id) as empi_id
        from {{ this }} as r
        left join {{ source('mpi', 'xref') }} as xl
            on xl.org_code = r.org_code and xl.source_system = r.source_system and xl.local_id = r.local_patient_id
        left join {{ source('mpi', 'xref') }} as xh
            on xh.org_code = r.org_code and xh.source_system = r.patient_id_authority
            and xh.local_id = r.local_patient_id
    ) as n
    where n.empi_id is not null and (n.held is null or n.held <> n.empi_id)
    {%- endset -%}
    {{ repoint_empi(changed) }}
{%- endmacro %}

{# The encounter key and HIS patient key by (institution, local encounter id), for sources (PACS, EMR) that name a
   visit by its HIS number only (vendor_a's GH/ZY numbers and vendor_b's visit ids do not collide within an
   institution), looked up only for the pairs `ids_sql` selects (org_code, local_encounter_id): aggregating every
   CDR encounter cost more than the models that read it. #}
{% macro encounter_lookup(ids_sql) -%}
    select e.org_code, e.local_encounter_id, min(e.encounter_key) as encounter_key, min(e.patient_key) as patient_key
    from {{ ref('cdr__encounter') }} as e
    where exists (
        select 1 from ({{ ids_sql }}) as wanted
        where wanted.org_code = e.org_code and wanted.local_encounter_id = e.local_encounter_id
    )
    group by e.org_code, e.local_encounter_id
{%- endmacro %}

{# Post-hook of an incremental model linked to the HIS encounter by (org_code, local_encounter_id): re-point
   encounter_key and patient_key at the encounter lookup's current answer (an encounter landed, changed or deleted
   after the row was built), as a full rebuild would. #}
{% macro relink_encounter(key_column) -%}
    update {{ this }} as t set encounter_key = n.encounter_key, patient_key = n.patient_key
    from (
        select r.{{ key_column }} as row_key, l.encounter_key, l.patient_key
        from {{ this }} as r
        left join ({{ encounter_lookup('select org_code, local_encounter_id from ' ~ this) }}) as l
            on l.org_code = r.org_code and l.local_encounter_id = r.local_encounter_id
    ) as n
    where n.row_key = t.{{ key_column }}
      and (t.encounter_key is distinct from n.encounter_key or t.patient_key is distinct from n.patient_key)
{%- endmacro %}

{# In an incremental model that aggregates the rows of a raw table by a group (a DICOM study's instances, a
   document's sections): the groups of every raw version — current, older or a delete — of the keys with a version
   landed after the model's watermark, i.e. every group whose rows changed, including groups a row left. #}
{% macro touched_groups(relation, group_expr) -%}
    select {{ group_expr }} from {{ relation }} as v
    where exists (
        select 1 from {{ relation }} as n
        where n._ingested_at > {{ incremental_watermark() }}
          and n._org_code = v._org_code and n._source_key = v._source_key
    )
{%- endmacro %}

{# The watermark an incremental model held before its current load (what the pre-hook `record_load` wrote to
   ops.dbt_load), for post-hooks that look at what landed since. NULL after a full build (or a load into an empty
   table): nothing was held, so such a post-hook finds no candidate (on a full build it would re-check every row). #}
{% macro previous_watermark() -%}
    ({{ loaded_after_sql(this.identifier) }})
{%- endmacro %}

{# The query for the watermark `model_name` held before its last load (ops.dbt_load; NULL after a full build). #}
{% macro loaded_after_sql(model_name) -%}
    select max(l.loaded_after) from ops.dbt_load as l
     where l.model_name = '{{ model_name }}'
       and l.recorded_at = (select max(m.recorded_at) from ops.dbt_load as m where m.model_name = '{{ model_name }}')
{%- endmacro %}

{# Keys (org_code || '|' || _source_key) of a raw table with a delete version landed after the model's previous
   watermark: candidates for a post-hook that drops rows whose upstream row is gone. #}
{% macro deleted_since_last_load(raw_relation) -%}
    select d._org_code || '|' || d._source_key from {{ raw_relation }} as d
    where d._op = 'D' and d._ingested_at > {{ previous_watermark() }}
{%- endmacro %}

{# current_rows for a public-health staging model that keeps a service entered twice under two ids once (ranked
   within a resident's record, `group_column` = record_no): an incremental run re-derives every key of each record
   a changed key is in or was in (its versions' records), so the ranking sees the whole record, as a full build does.
   A latest version that is a delete is kept (delete+insert replaces the held row; `drop_deleted_rows` removes it).
   The model ranks deletes apart (`_op = 'D'` in its partition) and keeps ranks > 1 in an incremental batch so that
   delete+insert replaces their held rows; the post-hook `drop_duplicate_services` removes them. #}
{% macro current_rows_of_groups(relation, group_column) -%}
    {%- if is_incremental() %}
    {%- set touched = touched_groups(relation, 'distinct v._org_code, trim(v.' ~ group_column ~ ') as grp') %}
    select * from (
        select v.*, {{ version_rank() }} as _version_rank
        from {{ relation }} as v
        where exists (
            select 1 from {{ relation }} as k
            inner join ({{ touched }}) as t on t._org_code = k._org_code and t.grp = trim(k.{{ group_column }})
            where k._org_code = v._org_code and k._source_key = v._source_key
        )
    ) as versions
    where _version_rank = 1
      and (_op = 'D' or exists (
          select 1 from ({{ touched }}) as t
          where t._org_code = versions._org_code and t.grp = trim(versions.{{ group_column }})
      ))
    {%- else %}
    {{ current_rows(relation) }}
    {%- endif %}
{%- endmacro %}

{# The rows a service-deduplicating model keeps: rank 1 (a full build filters; an incremental batch keeps every
   rank, see current_rows_of_groups). #}
{% macro first_service_only() -%}
    {%- if not is_incremental() %}
    where _service_rank = 1
    {%- endif %}
{%- endmacro %}

{# Post-hook of a service-deduplicating staging model: a service entered twice keeps its first id only. #}
{% macro drop_duplicate_services() -%}
    delete from {{ this }} where _service_rank > 1
{%- endmacro %}

{# In an incremental health-record model keyed to a public-health service: the service rows landed after the
   model's watermark, and (`with_record`) the services of every record with a raw version landed after it (the
   record's birth date gives the age on the service day). #}
{% macro ph_service_batch(alias, with_record=false) -%}
    {%- if is_incremental() %}
    where {{ alias }}._ingested_at > {{ incremental_watermark() }}
    {%- if with_record %}
       or {{ alias }}.record_key in (
           select {{ key(['v._org_code', 'v.record_no']) }} from {{ source('raw', 'ph_health_record') }} as v
           where v._ingested_at > {{ incremental_watermark() }}
       )
    {%- endif %}
    {%- endif %}
{%- endmacro %}

{# The config of an incremental health-record model with one row per public-health staging row: delete+insert on
   the key, rows gone from staging dropped, EMPI ids re-pointed through the PH identity (档案编号). #}
{% macro ph_record_config(key_column, staging_model, staging_key=none) -%}
    {{ config(
        materialized='incremental',
        unique_key=key_column,
        incremental_strategy='delete+insert',
        post_hook=[
            "{{ drop_missing('" ~ key_column ~ "', ref('" ~ staging_model ~ "'), '" ~ (staging_key or key_column) ~ "') }}",
            "{{ refresh_empi(none, 'record_no', 'PH') }}",
        ],
    ) }}
{%- endmacro %}
