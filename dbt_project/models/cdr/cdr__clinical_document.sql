-- CDR clinical document (入院记录 WS 445 part 12, 出院小结 part 15, ...): one row per EMR document with the
-- document type decoded, the text of the key sections, keyed to the EMPI id and the HIS encounter.
with sections as (
    select
        document_key,
        max(case when section_title = '主诉' then section_text end) as chief_complaint,
        max(case when section_title = '现病史' then section_text end) as present_illness,
        max(case when section_title = '入院诊断' then section_text end) as admission_diagnosis,
        max(case when section_title = '诊疗经过' then section_text end) as treatment_course,
        max(case when section_title = '出院诊断' then section_text end) as discharge_diagnosis,
        max(case when section_title = '出院医嘱' then section_text end) as discharge_orders,
        count(*) as section_count
    from {{ ref('stg_emr__section') }}
    group by document_key
)

select
    d.document_key as clinical_document_key,
    d.document_id,
    e.encounter_key,
    e.patient_key,
    x.empi_id,
    d.org_code,
    d.source_system,
    d.local_patient_id,
    d.local_encounter_id,
    d.document_type_code,
    coalesce(c_clinical_document_type.name, d.document_type_name)
        as document_type_name,
    d.template_id,
    d.document_format,
    d.title,
    d.effective_time,
    d.author_id,
    d.admission_time,
    d.discharge_time,
    d.dept_code,
    d.diagnosis_codes,
    s.chief_complaint,
    s.present_illness,
    s.admission_diagnosis,
    s.treatment_course,
    s.discharge_diagnosis,
    s.discharge_orders,
    coalesce(s.section_count, 0) as section_count,
    d._source_key,
    d._record_hash,
    d._batch_id,
    d._ingested_at,
    d._source_updated_at,
    d._origin
from {{ ref('stg_emr__document') }} as d
left join sections as s on s.document_key = d.document_key
left join {{ ref('int_encounter_lookup') }} as e
    on e.org_code = d.org_code and e.local_encounter_id = d.local_encounter_id
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = d.org_code and x.source_system = d.source_system and x.local_id = d.local_patient_id
{{ code_join('c_clinical_document_type', 'code__clinical_document_type', 'd.document_type_code') }}
