-- The resident's encounters in the CDR (门诊 / 急诊 / 住院 at any institution of the county), by EMPI id.
-- A view of cdr__encounter (writing the county's encounters out again cost more than hr__person reading them);
-- its tests check the encounters' last load.
{{ config(materialized='view', meta={'last_load_of': 'cdr__encounter'}) }}
select
    e.empi_id,
    e.encounter_key,
    e.org_code,
    e.encounter_class_code,
    e.encounter_class_name,
    e.start_time,
    e.end_time,
    e.dept_name,
    e.diagnosis_source_code,
    e.diagnosis_name,
    e._ingested_at,
    e._origin
from {{ ref('cdr__encounter') }} as e
where e.empi_id is not null
