-- The monthly measures and their yearly sums, one row per (period_type, period, institution), with the
-- institution's type, grade, beds and physicians (ops.institution). period_days = days of the period's months
-- that the data covers (a year the data only partly covers has fewer days); working_days = 251 × period_days /
-- days of the year (卫生统计: 251 working days a year).
with by_period as (
    select
        'month' as period_type, month as period, org_code, days_in_month as period_days, days_in_year,
        outpatient_visits, emergency_visits, admissions, discharges, discharged_bed_days, occupied_bed_days,
        outpatient_fee, outpatient_drug_fee, inpatient_fee, inpatient_drug_fee, inpatient_diagnosis_fee
    from {{ ref('int_marts__org_month') }}
    union all
    select
        'year', year, org_code, sum(days_in_month), max(days_in_year),
        sum(outpatient_visits), sum(emergency_visits), sum(admissions), sum(discharges), sum(discharged_bed_days),
        sum(occupied_bed_days), sum(outpatient_fee), sum(outpatient_drug_fee), sum(inpatient_fee),
        sum(inpatient_drug_fee), sum(inpatient_diagnosis_fee)
    from {{ ref('int_marts__org_month') }}
    group by year, org_code
)

select
    p.period_type,
    p.period,
    p.org_code,
    i.short as org_short,
    i.name as org_name,
    i.type as org_type,
    i.grade as org_grade,
    i.beds,
    i.physicians,
    p.period_days,
    round(cast(251 * p.period_days as numeric(20, 6)) / p.days_in_year, 4) as working_days,
    p.outpatient_visits,
    p.emergency_visits,
    p.outpatient_visits + p.emergency_visits as visits,
    p.admissions,
    p.discharges,
    p.discharged_bed_days,
    p.occupied_bed_days,
    i.beds * p.period_days as open_bed_days,
    p.outpatient_fee,
    p.outpatient_drug_fee,
    p.inpatient_fee,
    p.inpatient_drug_fee,
    p.inpatient_diagnosis_fee
from by_period as p
inner join {{ source('ops', 'institution') }} as i on i.org_code = p.org_code
