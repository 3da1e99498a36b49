-- CDR patient (WS 445-2014 part 1 病历概要 demographics): one row per institution-local patient,
-- with the EMPI id when the master patient index has linked it, and lineage back to raw.
select
    p.patient_key,
    x.empi_id,
    p.org_code,
    p.source_system,
    p.local_patient_id,
    p.name,
    p.sex_code,
    sex.name as sex_name,
    p.sex_source_value,
    p.birth_date,
    p.birth_date_source_value,
    p.id_type_source_value,
    p.id_no,
    p.phone,
    p.address,
    p.ethnicity_source_value,
    p.marital_status_source_value,
    p.insurance_type_source_value,
    p._source_key,
    p._record_hash,
    p._batch_id,
    p._origin
from {{ ref('stg_his__patient') }} as p
left join {{ ref('code__sex') }} as sex on sex.code = p.sex_code
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = p.org_code and x.source_system = p.source_system and x.local_id = p.local_patient_id
