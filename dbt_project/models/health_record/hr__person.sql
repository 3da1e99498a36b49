-- WS 365 resident health record: one longitudinal row per EMPI id that has a public-health record or a CDR
-- encounter — basic information (from the latest health record, else the latest HIS patient row), enrolment,
-- chronic-disease follow-ups, vaccinations, 65+ check-ups and encounter counts. Maternal care (孕产妇健康管理) is
-- not available: no source of the county sends it (see _health_record.yml).
with people as (
    select empi_id from {{ ref('hr__enrolment') }} where empi_id is not null
    union
    select empi_id from {{ ref('hr__encounter_summary') }}
),

latest_record as (
    select * from (
        select
            e.*,
            row_number() over (partition by e.empi_id order by e.record_date desc nulls last, e.record_key) as rn
        from {{ ref('hr__enrolment') }} as e
        where e.empi_id is not null
    ) as ranked
    where rn = 1
),

latest_patient as (
    select * from (
        select p.*, row_number() over (partition by p.empi_id order by p.patient_key desc) as rn
        from {{ ref('cdr__patient') }} as p
        where p.empi_id is not null
    ) as ranked
    where rn = 1
),

enrolment as (
    select empi_id, count(*) as health_records, min(record_date) as first_record_date
    from {{ ref('hr__enrolment') }}
    where empi_id is not null
    group by empi_id
),

htn as (
    select
        empi_id,
        count(*) as hypertension_followups,
        max(visit_date) as last_hypertension_followup_date
    from {{ ref('hr__hypertension_followup') }}
    where empi_id is not null
    group by empi_id
),

dm as (
    select
        empi_id,
        count(*) as diabetes_followups,
        max(visit_date) as last_diabetes_followup_date
    from {{ ref('hr__diabetes_followup') }}
    where empi_id is not null
    group by empi_id
),

vac as (
    select empi_id, count(*) as vaccinations, max(vaccination_date) as last_vaccination_date
    from {{ ref('hr__vaccination') }}
    where empi_id is not null
    group by empi_id
),

chk as (
    select empi_id, count(*) as elderly_checkups, max(checkup_date) as last_elderly_checkup_date
    from {{ ref('hr__elderly_checkup') }}
    where empi_id is not null
    group by empi_id
),

enc as (
    select
        empi_id,
        sum(case when encounter_class_code = '1' then 1 else 0 end) as outpatient_visits,
        sum(case when encounter_class_code = '2' then 1 else 0 end) as emergency_visits,
        sum(case when encounter_class_code = '3' then 1 else 0 end) as inpatient_stays,
        count(distinct org_code) as institutions_visited,
        min(start_time) as first_encounter_at,
        max(start_time) as last_encounter_at
    from {{ ref('hr__encounter_summary') }}
    group by empi_id
)

select
    p.empi_id,
    coalesce(r.name, pt.name) as name,
    coalesce(r.sex_code, pt.sex_code) as sex_code,
    coalesce(r.birth_date, pt.birth_date) as birth_date,
    coalesce(r.id_no, pt.id_no) as id_no,
    coalesce(r.address, pt.address) as address,
    coalesce(r.phone, pt.phone) as phone,
    r.record_key is not null as has_health_record,
    r.org_code as record_org_code,
    r.record_no,
    coalesce(en.health_records, 0) as health_records,
    en.first_record_date,
    coalesce(htn.hypertension_followups, 0) > 0 as hypertension_managed,
    coalesce(htn.hypertension_followups, 0) as hypertension_followups,
    htn.last_hypertension_followup_date,
    coalesce(dm.diabetes_followups, 0) > 0 as diabetes_managed,
    coalesce(dm.diabetes_followups, 0) as diabetes_followups,
    dm.last_diabetes_followup_date,
    coalesce(vac.vaccinations, 0) as vaccinations,
    vac.last_vaccination_date,
    coalesce(chk.elderly_checkups, 0) as elderly_checkups,
    chk.last_elderly_checkup_date,
    false as maternal_care_available,
    coalesce(enc.outpatient_visits, 0) as outpatient_visits,
    coalesce(enc.emergency_visits, 0) as emergency_visits,
    coalesce(enc.inpatient_stays, 0) as inpatient_stays,
    coalesce(enc.institutions_visited, 0) as institutions_visited,
    enc.first_encounter_at,
    enc.last_encounter_at
from people as p
left join latest_record as r on r.empi_id = p.empi_id
left join latest_patient as pt on pt.empi_id = p.empi_id
left join enrolment as en on en.empi_id = p.empi_id
left join htn on htn.empi_id = p.empi_id
left join dm on dm.empi_id = p.empi_id
left join vac on vac.empi_id = p.empi_id
left join chk on chk.empi_id = p.empi_id
left join enc on enc.empi_id = p.empi_id
