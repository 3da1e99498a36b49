-- CDR patient (WS 445-2014 part 1 病历概要 demographics): one row per institution-local HIS patient, with the
-- EMPI id when the master patient index has linked it, national codes beside their names, lineage to raw.
-- Incremental on the landing watermark; patients deleted in staging and EMPI changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='patient_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_missing('patient_key', ref('stg_his__patient'), 'patient_key') }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}
select
    p.patient_key,
    x.empi_id,
    p.org_code,
    p.source_system,
    p.local_patient_id,
    p.name,
    p.sex_code,
    c_sex.name as sex_name,
    p.sex_source_value,
    p.birth_date,
    p.birth_date_source_value,
    p.id_type_source_value,
    p.id_type_code,
    c_id_document_type.name as id_type_name,
    p.id_no,
    p.phone,
    p.address,
    p.ethnicity_source_value,
    p.ethnicity_code,
    c_ethnicity.name as ethnicity_name,
    p.marital_status_source_value,
    p.marital_status_code,
    c_marital_status.name as marital_status_name,
    p.insurance_type_source_value,
    p.payment_method_code,
    c_payment_method.name as payment_method_name,
    p._source_key,
    p._record_hash,
    p._batch_id,
    p._ingested_at,
    p._source_updated_at,
    p._origin
from {{ ref('stg_his__patient') }} as p
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = p.org_code and x.source_system = p.source_system and x.local_id = p.local_patient_id
{{ code_join('c_sex', 'code__sex', 'p.sex_code') }}
{{ code_join('c_id_document_type', 'code__id_document_type', 'p.id_type_code') }}
{{ code_join('c_ethnicity', 'code__ethnicity', 'p.ethnicity_code') }}
{{ code_join('c_marital_status', 'code__marital_status', 'p.marital_status_code') }}
{{ code_join('c_payment_method', 'code__payment_method', 'p.payment_method_code') }}
{{ after_watermark('p._ingested_at') }}
