-- CDR clinical document (入院记录 WS 445 part 12, 出院小结 part 15, ...): one row per EMR document with the
-- document type decoded, the text of the key sections, keyed to the EMPI id and the HIS encounter. Incremental:
-- a run rebuilds the documents landed after the watermark and those a section landed in or left (touched_groups);
-- documents gone from staging, encounter links and EMPI changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='clinical_document_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_missing('clinical_document_key', ref('stg_emr__document'), 'document_key') }}",
        "{{ relink_encounter('clinical_document_key') }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}
with documents as (
    select * from {{ ref('stg_emr__document') }} as d
    {%- if is_incremental() %}
    where d._ingested_at > {{ incremental_watermark() }}
       or d.document_key in ({{ touched_groups(source('raw', 'emr_section'), key(['v._org_code', 'v.document_id'])) }})
    {%- endif %}
),

sections as (
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
    where document_key in (select document_key from documents)
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
from documents as d
left join sections as s on s.document_key = d.document_key
left join ({{ encounter_lookup('select org_code, local_encounter_id from documents') }}) as e
    on e.org_code = d.org_code and e.local_encounter_id = d.local_encounter_id
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = d.org_code and x.source_system = d.source_system and x.local_id = d.local_patient_id
{{ code_join('c_clinical_document_type', 'code__clinical_document_type', 'd.document_type_code') }}
