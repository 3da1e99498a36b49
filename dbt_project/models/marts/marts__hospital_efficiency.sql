-- 医院运行效率 per (period_type, period, institution): STANDARDS.md formulas, numerators and denominators kept.
select
    period_type, period, org_code, org_short, org_name, org_type, org_grade, beds, physicians, period_days,
    working_days, visits, discharges, discharged_bed_days, occupied_bed_days, open_bed_days,
    {{ ratio('discharged_bed_days', 'discharges') }} as alos_days,
    {{ ratio('occupied_bed_days', 'open_bed_days', 100) }} as bed_occupancy_pct,
    {{ ratio('discharges', 'beds') }} as bed_turnover,
    {{ ratio('visits', 'physicians * working_days') }} as visits_per_physician_day,
    {{ ratio('occupied_bed_days', 'physicians * period_days') }} as bed_days_per_physician_day
from {{ ref('int_marts__org_period') }}
