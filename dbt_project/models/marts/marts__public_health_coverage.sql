-- 基本公共卫生 coverage per year and public-health institution (its township is its jurisdiction): 建档率,
-- 高血压 / 2型糖尿病 规范管理率 and control rates, 65+ 健康管理率 (国家基本公共卫生服务规范 第三版; STANDARDS.md).
-- A resident is counted once per institution: by EMPI id, or by the record when the MPI has not linked it.
-- Denominators come from ops.population (latest reference year).
with years as (
    select distinct year from {{ ref('int_marts__calendar') }}
),

pop_year as (
    select max(year) as year from {{ source('ops', 'population') }}
),

population as (
    select
        p.township_code,
        sum(p.population) as population,
        sum(case when p.age_low >= 65 then p.population else 0 end) as population_65
    from {{ source('ops', 'population') }} as p
    inner join pop_year as y on y.year = p.year
    group by p.township_code
),

spine as (
    select y.year, i.org_code, i.short as org_short, i.name as org_name, i.type as org_type, i.grade as org_grade,
        i.township_code
    from {{ source('ops', 'institution') }} as i
    cross join years as y
    where i.has_public_health
),

records as (
    select s.year, s.org_code, count(distinct coalesce(e.empi_id, e.record_key)) as residents_with_record
    from spine as s
    inner join {{ ref('hr__enrolment') }} as e
        on e.org_code = s.org_code and e.record_date <= cast(s.year || '-12-31' as date)
    group by s.year, s.org_code
),

{% for kind, target in [('htn', 'bp_controlled'), ('dm', 'fbg_controlled')] %}
{{ kind }}_visits as (
    select
        org_code,
        {{ period_of('visit_date', 'year') }} as year,
        coalesce(empi_id, record_key) as person_key,
        face_to_face,
        {{ target }} as controlled,
        row_number() over (
            partition by org_code, {{ period_of('visit_date', 'year') }}, coalesce(empi_id, record_key)
            order by visit_date desc, followup_no desc
        ) as recency
    from {{ ref('hr__' ~ ('hypertension' if kind == 'htn' else 'diabetes') ~ '_followup') }}
    where visit_date is not null
),

{{ kind }}_people as (
    select
        org_code,
        year,
        person_key,
        sum(case when face_to_face then 1 else 0 end) as face_to_face_visits,
        max(case when recency = 1 and controlled then 1 else 0 end) as controlled_at_last_visit
    from {{ kind }}_visits
    group by org_code, year, person_key
),

{{ kind }} as (
    select
        org_code,
        year,
        count(*) as {{ kind }}_managed,
        sum(case when face_to_face_visits >= 4 then 1 else 0 end) as {{ kind }}_standard,
        sum(controlled_at_last_visit) as {{ kind }}_controlled
    from {{ kind }}_people
    group by org_code, year
),
{% endfor %}

elderly as (
    select
        org_code,
        {{ period_of('checkup_date', 'year') }} as year,
        count(distinct coalesce(empi_id, record_key)) as elderly_managed
    from {{ ref('hr__elderly_checkup') }}
    where checkup_date is not null and age_at_checkup >= 65
    group by 1, 2
)

select
    'year' as period_type,
    s.year as period,
    s.org_code, s.org_short, s.org_name, s.org_type, s.org_grade, s.township_code,
    coalesce(p.population, 0) as population,
    coalesce(r.residents_with_record, 0) as residents_with_record,
    {{ ratio('coalesce(r.residents_with_record, 0)', 'p.population', 100) }} as record_rate_pct,
    coalesce(htn.htn_managed, 0) as htn_managed,
    coalesce(htn.htn_standard, 0) as htn_standard,
    coalesce(htn.htn_controlled, 0) as htn_controlled,
    {{ ratio('htn.htn_standard', 'htn.htn_managed', 100) }} as htn_standard_rate_pct,
    {{ ratio('htn.htn_controlled', 'htn.htn_managed', 100) }} as htn_control_rate_pct,
    coalesce(dm.dm_managed, 0) as dm_managed,
    coalesce(dm.dm_standard, 0) as dm_standard,
    coalesce(dm.dm_controlled, 0) as dm_controlled,
    {{ ratio('dm.dm_standard', 'dm.dm_managed', 100) }} as dm_standard_rate_pct,
    {{ ratio('dm.dm_controlled', 'dm.dm_managed', 100) }} as dm_control_rate_pct,
    coalesce(p.population_65, 0) as population_65,
    coalesce(el.elderly_managed, 0) as elderly_managed,
    {{ ratio('coalesce(el.elderly_managed, 0)', 'p.population_65', 100) }} as elderly_rate_pct
from spine as s
left join population as p on p.township_code = s.township_code
left join records as r on r.org_code = s.org_code and r.year = s.year
left join htn on htn.org_code = s.org_code and htn.year = s.year
left join dm on dm.org_code = s.org_code and dm.year = s.year
left join elderly as el on el.org_code = s.org_code and el.year = s.year
