-- 老年人健康管理 check-ups of each resident (EMPI id through the 档案编号), with the age on the check-up day.
-- Incremental on the landing watermark and the records' (macro ph_record_config).
{{ ph_record_config('checkup_key', 'stg_ph__elderly_checkup') }}
select
    x.empi_id,
    c.checkup_key,
    c.org_code,
    c.checkup_no,
    c.record_key,
    c.record_no,
    c.checkup_date,
    {{ age_years('r.birth_date', 'c.checkup_date') }} as age_at_checkup,
    c.height_cm,
    c.weight_kg,
    round(c.weight_kg / nullif(c.height_cm * c.height_cm / 10000, 0), 1) as bmi,
    c.sbp_mmhg,
    c.dbp_mmhg,
    c.fbg_mmol_l,
    c.self_care_code,
    c.self_care_name,
    c._source_key,
    c._record_hash,
    c._batch_id,
    c._ingested_at,
    c._origin
from {{ ref('stg_ph__elderly_checkup') }} as c
left join {{ ref('stg_ph__health_record') }} as r on r.record_key = c.record_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = c.org_code and x.source_system = 'PH' and x.local_id = c.record_no
{{ ph_service_batch('c', with_record=true) }}
