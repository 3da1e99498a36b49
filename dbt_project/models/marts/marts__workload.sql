-- 工作量 per (period_type, period, institution): visits (门诊 + 急诊), admissions and discharges.
select
    period_type, period, org_code, org_short, org_name, org_type, org_grade,
    outpatient_visits, emergency_visits, visits, admissions, discharges
from {{ ref('int_marts__org_period') }}
