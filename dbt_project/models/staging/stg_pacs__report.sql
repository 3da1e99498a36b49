-- Current imaging reports from the RIS/PACS (one per accession number).
select
    {{ key(['r._org_code', 'r.accession_number']) }} as imaging_report_key,
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.accession_number') }} as accession_number,
    {{ clean('r.patient_id') }} as local_patient_id,
    {{ clean('r.patient_name') }} as patient_name,
    {{ clean('r.encounter_key') }} as local_encounter_id,
    {{ clean('r.exam_code') }} as exam_code,
    {{ clean('r.exam_name') }} as exam_name,
    {{ clean('r.modality') }} as modality,
    {{ try_timestamp('r.study_time') }} as study_time,
    {{ clean('r.findings') }} as findings,
    {{ clean('r.impression') }} as impression,
    {{ clean('r.abnormal') }} as abnormal_flag,
    {{ clean('r.reporting_doctor') }} as reporting_doctor,
    {{ clean('r.verifying_doctor') }} as verifying_doctor,
    {{ try_timestamp('r.report_time') }} as report_time,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'pacs_report')) }}) as r
