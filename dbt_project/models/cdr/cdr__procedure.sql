-- CDR procedure (手术及操作, ICD-9-CM-3 国家临床版 3.0): one row per operation or procedure, keyed to the EMPI id
-- through the HIS patient id the procedure names (as cdr__order). Incremental on the landing watermark; deletes and
-- EMPI changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='procedure_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_deleted('procedure_key', source('raw', 'his_procedure')) }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}
select
    s.procedure_key,
    s.encounter_key,
    s.patient_key,
    x.empi_id,
    s.org_code,
    s.source_system,
    split_part(s.patient_key, '|', 3) as local_patient_id,
    s.local_procedure_id,
    s.procedure_source_code,
    s.procedure_icd9cm3_code,
    coalesce(c_icd9cm3.name, s.procedure_name) as procedure_name,
    s.procedure_name as procedure_source_name,
    s.performed_at,
    s.surgeon_id,
    s._source_key,
    s._record_hash,
    s._batch_id,
    s._ingested_at,
    s._source_updated_at,
    s._origin
from {{ ref('stg_his__procedure') }} as s
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = s.org_code and x.source_system = s.source_system
    and x.local_id = split_part(s.patient_key, '|', 3)
{{ code_join('c_icd9cm3', 'code__icd9cm3', 's.procedure_icd9cm3_code') }}
{{ after_watermark('s._ingested_at') }}
