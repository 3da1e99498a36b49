-- CDR procedure (手术及操作, ICD-9-CM-3 国家临床版 3.0): one row per operation or procedure, keyed to the EMPI id.
select
    s.procedure_key,
    s.encounter_key,
    s.patient_key,
    x.empi_id,
    s.org_code,
    s.source_system,
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
left join {{ ref('stg_his__patient') }} as p on p.patient_key = s.patient_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = s.org_code and x.source_system = s.source_system and x.local_id = p.local_patient_id
{{ code_join('c_icd9cm3', 'code__icd9cm3', 's.procedure_icd9cm3_code') }}
