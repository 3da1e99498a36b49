-- CDR order: outpatient prescription lines (门(急)诊处方) and inpatient orders (住院医嘱) in one list, one row
-- per order line, drug decoded to ATC. Incremental on the landing watermark, deletes applied by post-hooks.
{{ config(
    materialized='incremental',
    unique_key='order_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_deleted('order_key', source('raw', 'his_prescription')) }}",
        "{{ drop_deleted('order_key', source('raw', 'his_order')) }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}

with orders as (
    select
        prescription_key as order_key,
        'prescription' as order_source,
        encounter_key, patient_key, org_code, source_system,
        local_prescription_id as local_order_id,
        cast(null as varchar) as order_category_code,
        cast(null as varchar) as order_type_source_value,
        drug_name as order_content,
        drug_source_code, drug_name, drug_atc_code, drug_spec, quantity, unit, unit_price, amount,
        prescribed_at as start_time,
        cast(null as timestamp) as stop_time,
        doctor_id,
        _source_key, _record_hash, _batch_id, _ingested_at, _source_updated_at, _origin
    from {{ ref('stg_his__prescription') }}
    {{ after_watermark() }}
    union all
    select
        order_key,
        'inpatient_order' as order_source,
        encounter_key, patient_key, org_code, source_system,
        local_order_id,
        order_category_code,
        order_type_source_value,
        order_content,
        drug_source_code,
        cast(null as varchar) as drug_name,
        drug_atc_code,
        cast(null as varchar) as drug_spec,
        cast(null as decimal(18, 4)) as quantity,
        cast(null as varchar) as unit,
        cast(null as decimal(18, 4)) as unit_price,
        cast(null as decimal(18, 4)) as amount,
        start_time,
        stop_time,
        doctor_id,
        _source_key, _record_hash, _batch_id, _ingested_at, _source_updated_at, _origin
    from {{ ref('stg_his__order') }}
    {{ after_watermark() }}
)

select
    o.order_key,
    o.order_source,
    o.encounter_key,
    o.patient_key,
    x.empi_id,
    o.org_code,
    o.source_system,
    split_part(o.patient_key, '|', 3) as local_patient_id,
    o.local_order_id,
    o.order_category_code,
    c_order_category.name as order_category_name,
    o.order_type_source_value,
    o.order_content,
    o.drug_source_code,
    coalesce(o.drug_name, c_drug.name) as drug_name,
    o.drug_atc_code,
    c_atc.name as drug_atc_name,
    o.drug_spec,
    o.quantity,
    o.unit,
    o.unit_price,
    o.amount,
    o.start_time,
    o.stop_time,
    o.doctor_id,
    o._source_key,
    o._record_hash,
    o._batch_id,
    o._ingested_at,
    o._source_updated_at,
    o._origin
from orders as o
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = o.org_code and x.source_system = o.source_system
    and x.local_id = split_part(o.patient_key, '|', 3)
{{ code_join('c_order_category', 'code__order_category', 'o.order_category_code') }}
{{ code_join('c_drug', 'code__drug', 'o.drug_source_code') }}
{{ code_join('c_atc', 'code__atc', 'o.drug_atc_code') }}
