-- Encounter key by (institution, local encounter id), for sources (PACS, EMR) that name a visit by its HIS
-- number only; vendor_a's GH/ZY numbers and vendor_b's visit ids do not collide within an institution.
{{ config(materialized='ephemeral') }}
select org_code, local_encounter_id, min(encounter_key) as encounter_key, min(patient_key) as patient_key
from {{ ref('cdr__encounter') }}
group by org_code, local_encounter_id
