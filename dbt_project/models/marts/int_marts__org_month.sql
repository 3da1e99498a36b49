-- Additive measures per institution and month (the base of every monthly and yearly hospital indicator):
-- visits, admissions, discharges, bed-days and fees. Institutions come from ops.institution, months from the
-- calendar; a month without activity has zeros.
with spine as (
    select i.org_code, c.month, c.year, c.month_start, c.next_month_start, c.days_in_month, c.days_in_year, c.data_end
    from {{ source('ops', 'institution') }} as i
    cross join {{ ref('int_marts__calendar') }} as c
),

visits as (
    select
        org_code,
        {{ period_of('start_time', 'month') }} as month,
        sum(case when encounter_class_code = '1' then 1 else 0 end) as outpatient_visits,
        sum(case when encounter_class_code = '2' then 1 else 0 end) as emergency_visits,
        sum(case when encounter_class_code = '3' then 1 else 0 end) as admissions
    from {{ ref('cdr__encounter') }}
    where start_time is not null
    group by 1, 2
),

discharged as (
    select
        org_code,
        {{ period_of('discharge_date', 'month') }} as month,
        count(*) as discharges,
        sum(los_days) as discharged_bed_days
    from {{ ref('int_marts__stay') }}
    where is_valid and discharge_date is not null
    group by 1, 2
),

occupied as (
    select
        s.org_code,
        c.month,
        sum({{ day_diff(
            'greatest(s.admit_date, c.month_start)',
            "least(coalesce(s.discharge_date, cast(c.data_end + interval '1 day' as date)), c.next_month_start)"
        ) }}) as occupied_bed_days
    from {{ ref('int_marts__stay') }} as s
    inner join {{ ref('int_marts__calendar') }} as c
        on s.admit_date < c.next_month_start
        and coalesce(s.discharge_date, cast(c.data_end + interval '1 day' as date)) > c.month_start
    where s.is_valid
    group by 1, 2
),

fees as (
    select
        org_code,
        {{ period_of('period_date', 'month') }} as month,
        sum(case when setting = 'outpatient' then amount else 0 end) as outpatient_fee,
        sum(case when setting = 'outpatient' and fee_group = 'drug' then amount else 0 end) as outpatient_drug_fee,
        sum(case when setting = 'inpatient' then amount else 0 end) as inpatient_fee,
        sum(case when setting = 'inpatient' and fee_group = 'drug' then amount else 0 end) as inpatient_drug_fee,
        sum(case when setting = 'inpatient' and fee_group = 'diagnosis' then amount else 0 end)
            as inpatient_diagnosis_fee
    from {{ ref('int_marts__fee') }} as f
    left join {{ ref('fee_category') }} as c on c.fee_category_code = f.fee_category_code
    where period_date is not null and setting is not null
    group by 1, 2
)

select
    s.org_code,
    s.month,
    s.year,
    s.days_in_month,
    s.days_in_year,
    coalesce(v.outpatient_visits, 0) as outpatient_visits,
    coalesce(v.emergency_visits, 0) as emergency_visits,
    coalesce(v.admissions, 0) as admissions,
    coalesce(d.discharges, 0) as discharges,
    coalesce(d.discharged_bed_days, 0) as discharged_bed_days,
    coalesce(o.occupied_bed_days, 0) as occupied_bed_days,
    coalesce(f.outpatient_fee, 0) as outpatient_fee,
    coalesce(f.outpatient_drug_fee, 0) as outpatient_drug_fee,
    coalesce(f.inpatient_fee, 0) as inpatient_fee,
    coalesce(f.inpatient_drug_fee, 0) as inpatient_drug_fee,
    coalesce(f.inpatient_diagnosis_fee, 0) as inpatient_diagnosis_fee
from spine as s
left join visits as v on v.org_code = s.org_code and v.month = s.month
left join discharged as d on d.org_code = s.org_code and d.month = s.month
left join occupied as o on o.org_code = s.org_code and o.month = s.month
left join fees as f on f.org_code = s.org_code and f.month = s.month
