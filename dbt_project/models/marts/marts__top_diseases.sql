-- 前十位疾病 per (period_type, period, institution): encounters by recorded diagnosis (门诊, 急诊 and 住院),
-- ranked by count then name. Diagnoses are grouped by their name as recorded (ICD-10 mapping lives in the
-- terminology seeds of the CDR).
with counted as (
    select
        org_code,
        {{ period_of('start_time', 'month') }} as month,
        {{ period_of('start_time', 'year') }} as year,
        diagnosis_name,
        count(*) as encounters
    from {{ ref('cdr__encounter') }}
    where start_time is not null and diagnosis_name is not null
    group by 1, 2, 3, 4
),

by_period as (
    select 'month' as period_type, month as period, org_code, diagnosis_name, encounters from counted
    union all
    select 'year', year, org_code, diagnosis_name, sum(encounters) from counted group by year, org_code, diagnosis_name
),

ranked as (
    select
        *,
        row_number() over (
            partition by period_type, period, org_code order by encounters desc, diagnosis_name
        ) as disease_rank
    from by_period
)

select r.period_type, r.period, r.org_code, i.type as org_type, i.grade as org_grade, r.disease_rank,
    r.diagnosis_name, r.encounters
from ranked as r
inner join {{ source('ops', 'institution') }} as i on i.org_code = r.org_code
where r.disease_rank <= 10
