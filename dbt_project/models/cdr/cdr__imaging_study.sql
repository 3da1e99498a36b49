-- CDR imaging study (检查, DICOM study): one row per study instance UID, instances and series counted,
-- keyed to the EMPI id through the PACS identity, linked to the HIS encounter by admission id. Incremental: a run
-- re-aggregates the studies an instance landed in or left (touched_groups); studies gone from staging, encounter
-- links and EMPI changes applied by the post-hooks.
{{ config(
    materialized='incremental',
    unique_key='imaging_study_key',
    incremental_strategy='delete+insert',
    post_hook=[
        "{{ drop_missing('imaging_study_key', ref('stg_pacs__study'), 'study_key') }}",
        "{{ relink_encounter('imaging_study_key') }}",
        "{{ refresh_empi('source_system', 'local_patient_id') }}",
    ],
) }}
with studies as (
    select
        study_key,
        min(org_code) as org_code,
        min(source_system) as source_system,
        min(study_instance_uid) as study_instance_uid,
        min(accession_number) as accession_number,
        min(local_patient_id) as local_patient_id,
        min(sex_code) as sex_code,
        min(birth_date) as birth_date,
        min(local_encounter_id) as local_encounter_id,
        min(modality) as modality,
        min(body_part) as body_part,
        min(study_time) as study_time,
        min(study_description) as study_description,
        min(referring_physician) as referring_physician,
        count(distinct series_instance_uid) as series_count,
        count(*) as instance_count,
        max(_batch_id) as _batch_id,
        max(_ingested_at) as _ingested_at,
        min(_origin) as _origin
    from {{ ref('stg_pacs__study') }}
    {%- if is_incremental() %}
    where study_key in ({{ touched_groups(source('raw', 'pacs_study'), key(['v._org_code', 'v.study_instance_uid'])) }})
    {%- endif %}
    group by study_key
)

select
    s.study_key as imaging_study_key,
    s.study_instance_uid,
    s.accession_number,
    e.encounter_key,
    e.patient_key,
    x.empi_id,
    s.org_code,
    s.source_system,
    s.local_patient_id,
    s.sex_code,
    s.birth_date,
    s.local_encounter_id,
    s.modality,
    c_modality.name as modality_name,
    s.body_part,
    s.study_time,
    s.study_description,
    s.referring_physician,
    s.series_count,
    s.instance_count,
    s._batch_id,
    s._ingested_at,
    s._origin
from studies as s
left join ({{ encounter_lookup('select org_code, local_encounter_id from studies') }}) as e
    on e.org_code = s.org_code and e.local_encounter_id = s.local_encounter_id
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = s.org_code and x.source_system = s.source_system and x.local_id = s.local_patient_id
{{ code_join('c_modality', 'code__modality', 's.modality') }}
