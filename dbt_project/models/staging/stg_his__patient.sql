-- Current version of every HIS patient row: latest by source update time, soft deletes removed,
-- sex decoded to GB/T 2261.1. One row per (institution, source system, local patient id).
with current_rows as (
    {{ current_rows(source('raw', 'his_patient')) }}
)

select
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.patient_id as local_patient_id,
    nullif(trim(r.name), '') as name,
    r.sex as sex_source_value,
    sex.std_code as sex_code,
    r.birth_date as birth_date_source_value,
    {{ try_date('r.birth_date') }} as birth_date,
    nullif(trim(r.id_type), '') as id_type_source_value,
    upper(nullif(trim(r.id_no), '')) as id_no,
    nullif(trim(r.phone), '') as phone,
    nullif(trim(r.address), '') as address,
    nullif(trim(r.ethnicity), '') as ethnicity_source_value,
    nullif(trim(r.marital_status), '') as marital_status_source_value,
    nullif(trim(r.insurance_type), '') as insurance_type_source_value,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._origin,
    r._source_updated_at
from current_rows as r
left join {{ ref('map_his__sex') }} as sex
    on sex.source_system = r._source_system and sex.local_code = trim(r.sex)
