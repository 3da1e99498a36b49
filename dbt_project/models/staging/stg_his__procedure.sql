-- Current operations and procedures, ICD-9-CM-3 code checked against the approved map.
select
    {{ key(['r._org_code', 'r._source_key']) }} as procedure_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.procedure_id as local_procedure_id,
    {{ his_encounter_key('r._org_code', 'r._source_system', clean('r.encounter_id'), 'true') }} as encounter_key,
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    {{ clean('r.procedure_code') }} as procedure_source_code,
    {{ clean('r.procedure_name') }} as procedure_name,
    m_procedure.std_code as procedure_icd9cm3_code,
    {{ try_timestamp('r.performed_at') }} as performed_at,
    {{ clean('r.surgeon_id') }} as surgeon_id,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_procedure')) }}) as r
{{ decode_join('m_procedure', 'map_his__procedure', 'r._source_system', 'r.procedure_code') }}
