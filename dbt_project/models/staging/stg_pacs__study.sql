-- Current DICOM instances (headers only), one row per SOP instance, sex decoded.
select
    {{ key(['r._org_code', 'r.sop_instance_uid']) }} as instance_key,
    {{ key(['r._org_code', 'r.study_instance_uid']) }} as study_key,
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.study_instance_uid') }} as study_instance_uid,
    {{ clean('r.series_instance_uid') }} as series_instance_uid,
    {{ clean('r.sop_instance_uid') }} as sop_instance_uid,
    {{ clean('r.sop_class_uid') }} as sop_class_uid,
    {{ clean('r.accession_number') }} as accession_number,
    {{ clean('r.patient_id') }} as local_patient_id,
    {{ clean('r.patient_name') }} as patient_name,
    {{ clean('r.patient_sex') }} as sex_source_value,
    m_sex.std_code as sex_code,
    {{ try_date('r.patient_birth_date') }} as birth_date,
    {{ clean('r.admission_id') }} as local_encounter_id,
    {{ clean('r.modality') }} as modality,
    {{ clean('r.body_part') }} as body_part,
    {{ try_timestamp(clean('r.study_date') ~ " || coalesce(substr(" ~ clean('r.study_time') ~ ", 1, 6), '')") }}
        as study_time,
    {{ clean('r.study_description') }} as study_description,
    {{ clean('r.series_description') }} as series_description,
    {{ clean('r.referring_physician') }} as referring_physician,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'pacs_study')) }}) as r
{{ decode_join('m_sex', 'map_pacs__sex', 'r._source_system', 'r.patient_sex') }}
