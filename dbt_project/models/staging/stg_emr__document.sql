-- Current EMR documents (WS/T 500 CDA or FHIR document bundles), header fields typed.
with current_rows as (
    {{ current_rows(source('raw', 'emr_document')) }}
)

select
    {{ key(['r._org_code', 'r.document_id']) }} as document_key,
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.document_id') }} as document_id,
    {{ clean('r.template_id') }} as template_id,
    {{ clean('r.type_code') }} as document_type_code,
    {{ clean('r.type_name') }} as document_type_name,
    {{ clean('r.title') }} as title,
    {{ try_timestamp('r.effective_time') }} as effective_time,
    {{ clean('r.patient_id') }} as local_patient_id,
    upper({{ clean('r.id_card_no') }}) as id_no,
    {{ clean('r.patient_name') }} as patient_name,
    {{ clean('r.sex_code') }} as sex_code,
    {{ try_date('r.birth_date') }} as birth_date,
    {{ clean('r.author_id') }} as author_id,
    {{ clean('r.custodian_org_code') }} as custodian_org_code,
    {{ clean('r.encounter_key') }} as local_encounter_id,
    {{ try_timestamp('r.admission_time') }} as admission_time,
    {{ try_timestamp('r.discharge_time') }} as discharge_time,
    {{ clean('r.department') }} as dept_code,
    {{ clean('r.diagnosis_codes') }} as diagnosis_codes,
    {{ clean('r.format') }} as document_format,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._origin,
    r._source_updated_at
from current_rows as r
