-- 病人负担 per (period_type, period, institution): 门诊次均费用, 出院者人均费用, drug and diagnosis shares.
select
    period_type, period, org_code, org_short, org_name, org_type, org_grade,
    visits, outpatient_fee, outpatient_drug_fee,
    {{ ratio('outpatient_fee', 'visits') }} as outpatient_fee_per_visit,
    {{ ratio('outpatient_drug_fee', 'outpatient_fee', 100) }} as outpatient_drug_share_pct,
    discharges, inpatient_fee, inpatient_drug_fee, inpatient_diagnosis_fee,
    {{ ratio('inpatient_fee', 'discharges') }} as inpatient_fee_per_discharge,
    {{ ratio('inpatient_drug_fee', 'inpatient_fee', 100) }} as inpatient_drug_share_pct,
    {{ ratio('inpatient_diagnosis_fee', 'inpatient_fee', 100) }} as inpatient_diagnosis_share_pct
from {{ ref('int_marts__org_period') }}
