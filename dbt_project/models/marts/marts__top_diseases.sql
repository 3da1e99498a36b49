-- 前十位疾病 per (period_type, period, institution): encounters (门诊, 急诊 and 住院) by principal diagnosis,
-- ICD-10 (国家临床版 2.0) when the terminology map knows the local code, else the recorded name (marked
-- unmapped); ranked by count then code.
with counted as (
    select
        org_code,
        {{ period_of('start_time', 'month') }} as month,
        {{ period_of('start_time', 'year') }} as year,
        coalesce(diagnosis_icd10_code, 'unmapped:' || diagnosis_name) as diagnosis_code,
        coalesce(diagnosis_icd10_name, diagnosis_name) as diagnosis_name,
        count(*) as encounters
    from {{ ref('cdr__encounter') }}
    where start_time is not null and coalesce(diagnosis_icd10_code, diagnosis_name) is not null
    group by 1, 2, 3, 4, 5
),

by_period as (
    select 'month' as period_type, month as period, org_code, diagnosis_code, diagnosis_name, encounters
    from counted
    union all
    select 'year', year, org_code, diagnosis_code, diagnosis_name, sum(encounters)
    from counted
    group by year, org_code, diagnosis_code, diagnosis_name
),

ranked as (
    select
        *,
        row_number() over (
            partition by period_type, period, org_code order by encounters desc, diagnosis_code
        ) as disease_rank
    from by_period
)

select r.period_type, r.period, r.org_code, i.type as org_type, i.grade as org_grade, r.disease_rank,
    r.diagnosis_code, r.diagnosis_name, r.encounters
from ranked as r
inner join {{ source('ops', 'institution') }} as i on i.org_code = r.org_code
where r.disease_rank <= 10
