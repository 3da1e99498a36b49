-- Current inpatient orders (住院医嘱), order category (长期/临时) and drug decoded.
select
    {{ key(['r._org_code', 'r._source_key']) }} as order_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.order_id as local_order_id,
    {{ his_encounter_key('r._org_code', 'r._source_system', clean('r.encounter_id'), 'true') }} as encounter_key,
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    {{ clean('r.order_type') }} as order_type_source_value,
    m_order_type.std_code as order_category_code,
    {{ clean('r.content') }} as order_content,
    {{ clean('r.drug_code') }} as drug_source_code,
    m_drug.std_code as drug_atc_code,
    {{ try_timestamp('r.start_time') }} as start_time,
    {{ try_timestamp('r.stop_time') }} as stop_time,
    {{ clean('r.doctor_id') }} as doctor_id,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_order')) }}) as r
{{ decode_join('m_order_type', 'map_his__order_type', 'r._source_system', 'r.order_type') }}
{{ decode_join('m_drug', 'map_his__drug', 'r._source_system', 'r.drug_code') }}
