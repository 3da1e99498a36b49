-- CDR medication: the drug lines of cdr__order (prescriptions and drug orders) with their ATC code.
{{ config(materialized='view', meta={'last_load_of': 'cdr__order'}) }}
select
    order_key as medication_key,
    order_key,
    order_source,
    encounter_key,
    patient_key,
    empi_id,
    org_code,
    source_system,
    drug_source_code,
    drug_name,
    drug_atc_code,
    drug_atc_name,
    drug_spec,
    quantity,
    unit,
    amount,
    start_time,
    stop_time,
    _batch_id,
    _ingested_at,
    _origin
from {{ ref('cdr__order') }}
where drug_source_code is not null
