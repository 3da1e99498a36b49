-- CDR diagnosis: the principal diagnosis of every HIS encounter (门(急)诊诊断 / 出院主要诊断), the local code
-- decoded to ICD-10 (国家临床版 2.0) through the approved map; unmapped codes keep their source value.
-- A view: a projection of cdr__encounter that no model reads (writing it out cost as much as the encounters).
{{ config(materialized='view', meta={'last_load_of': 'cdr__encounter'}) }}
select
    e.encounter_key || '|principal' as diagnosis_key,
    e.encounter_key,
    e.patient_key,
    e.empi_id,
    e.org_code,
    e.source_system,
    e.local_patient_id,
    'principal' as diagnosis_type,
    e.diagnosis_source_code,
    e.diagnosis_name as diagnosis_source_name,
    e.diagnosis_icd10_code,
    e.diagnosis_icd10_name,
    coalesce(e.end_time, e.start_time) as diagnosis_time,
    e._record_hash,
    e._batch_id,
    e._ingested_at,
    e._origin
from {{ ref('cdr__encounter') }} as e
where e.diagnosis_source_code is not null
