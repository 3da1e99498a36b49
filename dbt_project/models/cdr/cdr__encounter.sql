-- CDR encounter (WS 445-2014 门(急)诊 / 住院 records): one row per visit or stay, keyed to the EMPI id,
-- codes and names side by side, lineage to raw. Incremental on the landing watermark; deletes and EMPI
-- changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='encounter_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_deleted('encounter_key', source('raw', 'his_encounter')) }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}

select
    e.encounter_key,
    e.patient_key,
    x.empi_id,
    e.org_code,
    e.source_system,
    e.local_encounter_id,
    e.local_patient_id,
    e.encounter_class_code,
    c_encounter_class.name as encounter_class_name,
    e.encounter_type_source_value,
    e.start_time,
    e.start_time_source_value,
    e.end_time,
    e.end_time_source_value,
    e.dept_code,
    e.dept_name,
    e.dept_std_code,
    c_department.name as dept_std_name,
    e.doctor_id,
    e.bed_no,
    e.admission_route_source_value,
    e.admission_route_code,
    c_admission_route.name as admission_route_name,
    e.discharge_disposition_source_value,
    e.discharge_disposition_code,
    c_discharge_disposition.name as discharge_disposition_name,
    e.diagnosis_source_code,
    e.diagnosis_name,
    e.diagnosis_icd10_code,
    c_icd10.name as diagnosis_icd10_name,
    p.patient_key is not null as patient_found,
    e._source_key,
    e._record_hash,
    e._batch_id,
    e._ingested_at,
    e._source_updated_at,
    e._origin
from {{ ref('stg_his__encounter') }} as e
left join {{ ref('stg_his__patient') }} as p on p.patient_key = e.patient_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = e.org_code and x.source_system = e.source_system and x.local_id = e.local_patient_id
{{ code_join('c_encounter_class', 'code__encounter_class', 'e.encounter_class_code') }}
{{ code_join('c_department', 'code__department', 'e.dept_std_code') }}
{{ code_join('c_admission_route', 'code__admission_route', 'e.admission_route_code') }}
{{ code_join('c_discharge_disposition', 'code__discharge_disposition', 'e.discharge_disposition_code') }}
{{ code_join('c_icd10', 'code__icd10', 'e.diagnosis_icd10_code') }}
{{ after_watermark('e._ingested_at') }}
