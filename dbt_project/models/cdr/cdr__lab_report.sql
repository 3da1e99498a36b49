-- CDR lab report (检验报告, WS 445-2014 part 4): one row per HL7 order (OBR) with the message's patient and
-- visit, keyed to the EMPI id through the LIS identity (or the HIS identity the LIS named). Incremental on the
-- landing watermark (an order lands with its message); orders deleted in staging and EMPI changes applied by the
-- post-hooks.
{{ config(
    materialized='incremental',
    unique_key='lab_report_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_missing('lab_report_key', ref('stg_lis__order'), 'lab_order_key') }}",
        "{{ refresh_lab_report_empi() }}",
    ],
) }}
select
    o.lab_order_key as lab_report_key,
    o.message_key,
    m.encounter_key,
    m.his_patient_key as patient_key,
    coalesce(xl.empi_id, xh.empi_id) as empi_id,
    o.org_code,
    o.source_system,
    m.local_patient_id,
    m.patient_id_authority,
    m.encounter_class_code,
    c_encounter_class.name as encounter_class_name,
    m.local_encounter_id,
    m.dept_code,
    o.placer_order_no,
    o.filler_order_no,
    o.panel_code,
    coalesce(c_lab_panel.name, o.panel_name) as panel_name,
    o.observation_time,
    o.specimen_received_time,
    o.report_time,
    o.ordering_provider,
    o.result_status,
    c_result_status.name as result_status_name,
    o._source_key,
    o._record_hash,
    o._batch_id,
    o._ingested_at,
    o._source_updated_at,
    o._origin
from {{ ref('stg_lis__order') }} as o
left join {{ ref('stg_lis__message') }} as m on m.message_key = o.message_key
left join {{ source('mpi', 'xref') }} as xl
    on xl.org_code = m.org_code and xl.source_system = m.source_system and xl.local_id = m.local_patient_id
left join {{ source('mpi', 'xref') }} as xh
    on xh.org_code = m.org_code and xh.source_system = m.patient_id_authority and xh.local_id = m.local_patient_id
{{ code_join('c_encounter_class', 'code__encounter_class', 'm.encounter_class_code') }}
{{ code_join('c_lab_panel', 'code__lab_panel', 'o.panel_code') }}
{{ code_join('c_result_status', 'code__result_status', 'o.result_status') }}
{{ after_watermark('o._ingested_at') }}
