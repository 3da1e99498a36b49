-- Current HL7 v2 ORU^R01 messages (one per control id): patient and visit as the LIS sent them, sex decoded
-- (HL7 0001 → GB/T 2261.1), patient class decoded to the encounter class, the HIS encounter key derived
-- from PV1-19 and the patient id's assigning authority (the HIS system).
select
    {{ key(['r._org_code', 'r.control_id']) }} as message_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.control_id,
    {{ try_timestamp('r.message_time') }} as message_time,
    {{ clean('r.patient_id') }} as local_patient_id,
    {{ clean('r.patient_id_authority') }} as patient_id_authority,
    case when {{ clean('r.patient_id_authority') }} is not null
         then {{ key(['r._org_code', clean('r.patient_id_authority'), clean('r.patient_id')]) }} end as his_patient_key,
    {{ clean('r.family_name') }} || coalesce({{ clean('r.given_name') }}, '') as patient_name,
    {{ clean('r.sex') }} as sex_source_value,
    m_sex.std_code as sex_code,
    {{ try_date('r.birth_date') }} as birth_date,
    upper({{ clean('r.id_card_no') }}) as id_no,
    {{ clean('r.patient_class') }} as patient_class_source_value,
    m_encounter_class.std_code as encounter_class_code,
    {{ clean('r.department') }} as dept_code,
    {{ clean('r.attending_doctor') }} as doctor_id,
    {{ clean('r.visit_number') }} as local_encounter_id,
    {{ his_encounter_key('r._org_code', clean('r.patient_id_authority'), clean('r.visit_number'),
                         "trim(r.patient_class) = 'I'") }} as encounter_key,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'lis_message')) }}) as r
{{ decode_join('m_sex', 'map_lis__sex', 'r._source_system', 'r.sex') }}
{{ decode_join('m_encounter_class', 'map_lis__encounter_class', 'r._source_system', 'r.patient_class') }}
