-- Current version of every public-health 健康档案 (WS 365 个人基本信息表) row: latest by ingest, deletes removed,
-- sex decoded to GB/T 2261.1, dates parsed. One row per (institution, record_no). Incremental like the other
-- staging models (no service is deduplicated across ids here).
{{ config(materialized='incremental') }}
select
    {{ key(['r._org_code', 'r.record_no']) }} as record_key,
    r._org_code as org_code,
    r._source_system as source_system,
    trim(r.record_no) as record_no,
    upper(nullif(trim(r.id_no), '')) as id_no,
    nullif(trim(r.name), '') as name,
    r.sex as sex_source_value,
    sex.code as sex_code,
    sex.name as sex_name,
    {{ try_date('r.birth_date') }} as birth_date,
    nullif(trim(r.address), '') as address,
    nullif(trim(r.phone), '') as phone,
    {{ try_date('r.record_date') }} as record_date,
    nullif(trim(r.record_org), '') as record_org_name,
    nullif(trim(r.responsible_doctor), '') as responsible_doctor,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'ph_health_record')) }}) as r
left join {{ ref('ph_code__sex') }} as sex on sex.local_value = trim(r.sex)
