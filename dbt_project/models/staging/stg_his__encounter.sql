-- Current version of every HIS encounter (outpatient/emergency registration or inpatient stay), soft
-- deletes removed, times parsed, visit type, department, admission route, discharge disposition and the
-- principal diagnosis decoded through the approved value maps.
select
    {{ key(['r._org_code', 'r._source_key']) }} as encounter_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.encounter_id as local_encounter_id,
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    r.patient_id as local_patient_id,
    r.encounter_type as encounter_type_source_value,
    m_encounter_class.std_code as encounter_class_code,
    r.start_time as start_time_source_value,
    {{ try_timestamp('r.start_time') }} as start_time,
    r.end_time as end_time_source_value,
    {{ try_timestamp('r.end_time') }} as end_time,
    {{ clean('r.dept_code') }} as dept_code,
    {{ clean('r.dept_name') }} as dept_name,
    m_dept.std_code as dept_std_code,
    {{ clean('r.doctor_id') }} as doctor_id,
    {{ clean('r.bed_no') }} as bed_no,
    {{ clean('r.admission_route') }} as admission_route_source_value,
    m_admission_route.std_code as admission_route_code,
    {{ clean('r.discharge_disposition') }} as discharge_disposition_source_value,
    m_discharge_disposition.std_code as discharge_disposition_code,
    {{ clean('r.diagnosis_code') }} as diagnosis_source_code,
    {{ clean('r.diagnosis_name') }} as diagnosis_name,
    m_diagnosis.std_code as diagnosis_icd10_code,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_encounter')) }}) as r
{{ decode_join('m_encounter_class', 'map_his__encounter_class', 'r._source_system', 'r.encounter_type') }}
{{ decode_join('m_dept', 'map_his__dept', 'r._source_system', 'r.dept_code') }}
{{ decode_join('m_admission_route', 'map_his__admission_route', 'r._source_system', 'r.admission_route') }}
{{ decode_join('m_discharge_disposition', 'map_his__discharge_disposition', 'r._source_system', 'r.discharge_disposition') }}
{{ decode_join('m_diagnosis', 'map_his__diagnosis', 'r._source_system', 'r.diagnosis_code') }}
