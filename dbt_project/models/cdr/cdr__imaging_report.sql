-- CDR imaging report (检查报告, WS 445-2014 part 4): one row per accession number, findings and impression,
-- keyed to the EMPI id through the PACS identity and to the HIS encounter. Incremental on the landing watermark;
-- reports gone from staging, encounter links and EMPI changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='imaging_report_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_missing('imaging_report_key', ref('stg_pacs__report'), 'imaging_report_key') }}",
        "{{ relink_encounter('imaging_report_key') }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}
with reports as (
    select * from {{ ref('stg_pacs__report') }}
    {{ after_watermark() }}
)

select
    r.imaging_report_key,
    r.accession_number,
    e.encounter_key,
    e.patient_key,
    x.empi_id,
    r.org_code,
    r.source_system,
    r.local_patient_id,
    r.local_encounter_id,
    r.exam_code,
    coalesce(c_imaging_exam.name, r.exam_name) as exam_name,
    r.modality,
    c_modality.name as modality_name,
    r.study_time,
    r.findings,
    r.impression,
    r.abnormal_flag = '1' as abnormal,
    r.reporting_doctor,
    r.verifying_doctor,
    r.report_time,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._source_updated_at,
    r._origin
from reports as r
left join ({{ encounter_lookup('select org_code, local_encounter_id from reports') }}) as e
    on e.org_code = r.org_code and e.local_encounter_id = r.local_encounter_id
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = r.org_code and x.source_system = r.source_system and x.local_id = r.local_patient_id
{{ code_join('c_imaging_exam', 'code__imaging_exam', 'r.exam_code') }}
{{ code_join('c_modality', 'code__modality', 'r.modality') }}
