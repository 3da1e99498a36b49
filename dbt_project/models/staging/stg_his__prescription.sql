-- Current outpatient prescription lines (门(急)诊处方明细), both vendor schemas, drug decoded to ATC.
select
    {{ key(['r._org_code', 'r._source_key']) }} as prescription_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.prescription_id as local_prescription_id,
    {{ his_encounter_key('r._org_code', 'r._source_system', clean('r.encounter_id'), 'false') }} as encounter_key,
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    {{ clean('r.drug_code') }} as drug_source_code,
    {{ clean('r.drug_name') }} as drug_name,
    coalesce(m_drug.std_code, {{ clean('r.atc_code') }}) as drug_atc_code,
    {{ clean('r.spec') }} as drug_spec,
    {{ try_decimal('r.quantity') }} as quantity,
    {{ clean('r.unit') }} as unit,
    {{ try_decimal('r.unit_price') }} as unit_price,
    {{ try_decimal('r.amount') }} as amount,
    {{ try_timestamp('r.prescribed_at') }} as prescribed_at,
    {{ clean('r.doctor_id') }} as doctor_id,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_prescription')) }}) as r
{{ decode_join('m_drug', 'map_his__drug', 'r._source_system', 'r.drug_code') }}
