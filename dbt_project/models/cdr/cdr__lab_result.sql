-- CDR lab result (检验结果, WS 445-2014 part 4): one row per HL7 OBX result, local item decoded to LOINC,
-- numeric value parsed, keyed to its report and the EMPI id. Incremental on the landing watermark; deletes
-- and EMPI changes applied by post-hooks.
{{ config(
    materialized='incremental',
    unique_key='lab_result_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_deleted('lab_result_key', source('raw', 'lis_result')) }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}

select
    r.lab_result_key,
    r.lab_order_key as lab_report_key,
    m.encounter_key,
    m.his_patient_key as patient_key,
    x.empi_id,
    r.org_code,
    r.source_system,
    m.local_patient_id,
    r.item_source_code,
    r.item_name,
    r.loinc_code,
    c_loinc.name as loinc_name,
    r.loinc_code_reported,
    r.value_type,
    r.result_value,
    r.result_numeric,
    r.result_unit,
    r.reference_range,
    r.abnormal_flag,
    c_abnormal_flag.name as abnormal_flag_name,
    r.result_status,
    r.observation_time,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._source_updated_at,
    r._origin
from {{ ref('stg_lis__result') }} as r
left join {{ ref('stg_lis__message') }} as m on m.message_key = r.message_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = r.org_code and x.source_system = r.source_system and x.local_id = m.local_patient_id
{{ code_join('c_loinc', 'code__loinc', 'r.loinc_code') }}
{{ code_join('c_abnormal_flag', 'code__abnormal_flag', 'r.abnormal_flag') }}
{{ after_watermark('r._ingested_at') }}
