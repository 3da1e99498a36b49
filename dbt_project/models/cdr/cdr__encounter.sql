-- CDR encounter (WS 445-2014 门(急)诊 / 住院 records): one row per visit or stay, linked to its
-- patient, with lineage back to raw.
select
    e.encounter_key,
    e.patient_key,
    p.empi_id,
    e.org_code,
    e.source_system,
    e.local_encounter_id,
    e.local_patient_id,
    e.encounter_class_code,
    cls.name as encounter_class_name,
    e.encounter_type_source_value,
    e.start_time,
    e.start_time_source_value,
    e.end_time,
    e.end_time_source_value,
    e.dept_code,
    e.dept_name,
    e.doctor_id,
    e.bed_no,
    e.admission_route_source_value,
    e.discharge_disposition_source_value,
    e.diagnosis_source_code,
    e.diagnosis_name,
    p.patient_key is not null as patient_found,
    e._source_key,
    e._record_hash,
    e._batch_id,
    e._origin
from {{ ref('stg_his__encounter') }} as e
left join {{ ref('cdr__patient') }} as p on p.patient_key = e.patient_key
left join {{ ref('code__encounter_class') }} as cls on cls.code = e.encounter_class_code
