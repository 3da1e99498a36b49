-- Current version of every HIS encounter (outpatient/emergency registration or inpatient stay),
-- soft deletes removed, visit type decoded to the encounter class, times parsed.
with current_rows as (
    {{ current_rows(source('raw', 'his_encounter')) }}
)

select
    {{ key(['r._org_code', 'r._source_key']) }} as encounter_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.encounter_id as local_encounter_id,
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    r.patient_id as local_patient_id,
    r.encounter_type as encounter_type_source_value,
    cls.std_code as encounter_class_code,
    r.start_time as start_time_source_value,
    {{ try_timestamp('r.start_time') }} as start_time,
    r.end_time as end_time_source_value,
    {{ try_timestamp('r.end_time') }} as end_time,
    nullif(trim(r.dept_code), '') as dept_code,
    nullif(trim(r.dept_name), '') as dept_name,
    nullif(trim(r.doctor_id), '') as doctor_id,
    nullif(trim(r.bed_no), '') as bed_no,
    nullif(trim(r.admission_route), '') as admission_route_source_value,
    nullif(trim(r.discharge_disposition), '') as discharge_disposition_source_value,
    nullif(trim(r.diagnosis_code), '') as diagnosis_source_code,
    nullif(trim(r.diagnosis_name), '') as diagnosis_name,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._origin,
    r._source_updated_at
from current_rows as r
left join {{ ref('map_his__encounter_class') }} as cls
    on cls.source_system = r._source_system and cls.local_code = trim(r.encounter_type)
