-- 预防接种 of each resident (EMPI id through the 档案编号), with the age in days on the vaccination day.
-- Incremental on the landing watermark (macro ph_record_config).
{{ ph_record_config('vaccination_key', 'stg_ph__vaccination') }}
select
    x.empi_id,
    v.vaccination_key,
    v.org_code,
    v.vaccination_no,
    v.record_key,
    v.record_no,
    v.birth_date,
    v.vaccine_code,
    v.vaccine_name,
    v.vaccine_source_value,
    v.dose_no,
    v.vaccination_date,
    {{ day_diff('v.birth_date', 'v.vaccination_date') }} as age_days,
    v.vaccine_lot,
    v.vaccination_org_name,
    v._source_key,
    v._record_hash,
    v._batch_id,
    v._ingested_at,
    v._origin
from {{ ref('stg_ph__vaccination') }} as v
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = v.org_code and x.source_system = 'PH' and x.local_id = v.record_no
{{ ph_service_batch('v') }}
