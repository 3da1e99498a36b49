-- WS 365 健康档案 enrolment: every public-health record (institution, 档案编号) with the resident's EMPI id
-- (mpi.xref, source system PH, local id = 档案编号). Records the MPI has not linked yet keep a NULL empi_id.
-- Incremental on the landing watermark (macro ph_record_config).
{{ ph_record_config('record_key', 'stg_ph__health_record') }}
select
    x.empi_id,
    r.record_key,
    r.org_code,
    r.record_no,
    r.record_date,
    r.record_org_name,
    r.responsible_doctor,
    r.name,
    r.sex_code,
    r.sex_name,
    r.birth_date,
    r.id_no,
    r.address,
    r.phone,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._origin
from {{ ref('stg_ph__health_record') }} as r
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = r.org_code and x.source_system = 'PH' and x.local_id = r.record_no
{{ ph_service_batch('r') }}
