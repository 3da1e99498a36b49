-- Every indicator of seeds/indicators/indicator.csv in long form — one row per (indicator, period type, period,
-- level, institution / institution type) with its value, numerator and denominator: what notebooks and feeds
-- read. level = institution (org_code set), org_type (all institutions of a type) or county (all institutions);
-- aggregates sum numerators and denominators (every indicator here is a ratio of additive counts). value =
-- numerator × multiplier / denominator (rounded to 4 decimals; NULL when the denominator is 0); counts have no
-- denominator and value = numerator.
{% set hospital = [
    ('hosp_alos', 'discharged_bed_days', 'discharges', 1),
    ('hosp_bed_occupancy', 'occupied_bed_days', 'open_bed_days', 100),
    ('hosp_bed_turnover', 'discharges', 'beds', 1),
    ('hosp_visits_per_physician_day', 'visits', 'physicians * working_days', 1),
    ('hosp_bed_days_per_physician_day', 'occupied_bed_days', 'physicians * period_days', 1),
    ('wl_visits', 'visits', none, 1),
    ('wl_outpatient_visits', 'outpatient_visits', none, 1),
    ('wl_emergency_visits', 'emergency_visits', none, 1),
    ('wl_admissions', 'admissions', none, 1),
    ('wl_discharges', 'discharges', none, 1),
    ('fee_op_per_visit', 'outpatient_fee', 'visits', 1),
    ('fee_ip_per_discharge', 'inpatient_fee', 'discharges', 1),
    ('fee_op_drug_share', 'outpatient_drug_fee', 'outpatient_fee', 100),
    ('fee_ip_drug_share', 'inpatient_drug_fee', 'inpatient_fee', 100),
    ('fee_ip_diagnosis_share', 'inpatient_diagnosis_fee', 'inpatient_fee', 100),
] -%}
{%- set public_health = [
    ('ph_record_rate', 'residents_with_record', 'population', 100),
    ('ph_htn_standard_rate', 'htn_standard', 'htn_managed', 100),
    ('ph_htn_control_rate', 'htn_controlled', 'htn_managed', 100),
    ('ph_dm_standard_rate', 'dm_standard', 'dm_managed', 100),
    ('ph_dm_control_rate', 'dm_controlled', 'dm_managed', 100),
    ('ph_elderly_rate', 'elderly_managed', 'population_65', 100),
] -%}
with long_form as (
{%- for relation, rows in [('int_marts__org_period', hospital), ('marts__public_health_coverage', public_health)] %}
{%- set outer = loop %}
{%- for indicator_id, numerator, denominator, multiplier in rows %}
    select
        '{{ indicator_id }}' as indicator_id, period_type, period, org_code, org_type, org_grade,
        {%- if denominator %}
        {{ ratio(numerator, denominator, multiplier) }} as value,
        cast({{ numerator }} as numeric(20, 4)) as numerator,
        cast({{ denominator }} as numeric(20, 4)) as denominator
        {%- else %}
        cast({{ numerator }} as numeric(20, 4)) as value,
        cast({{ numerator }} as numeric(20, 4)) as numerator,
        cast(null as numeric(20, 4)) as denominator
        {%- endif %}
    from {{ ref(relation) }}
    {%- if not (outer.last and loop.last) %}
    union all
    {%- endif %}
{%- endfor %}
{%- endfor %}
),

aggregated as (
    select indicator_id, period_type, period, 'org_type' as level, cast(null as varchar) as org_code, org_type,
        sum(numerator) as numerator, sum(denominator) as denominator
    from long_form
    group by indicator_id, period_type, period, org_type
    union all
    select indicator_id, period_type, period, 'county', cast(null as varchar), cast(null as varchar),
        sum(numerator), sum(denominator)
    from long_form
    group by indicator_id, period_type, period
),

all_levels as (
    select indicator_id, period_type, period, 'institution' as level, org_code, org_type, org_grade, value,
        numerator, denominator
    from long_form
    union all
    select a.indicator_id, a.period_type, a.period, a.level, a.org_code, a.org_type, cast(null as varchar),
        case
            when a.denominator is null then a.numerator
            else {{ ratio('a.numerator', 'a.denominator', 'i.multiplier') }}
        end,
        a.numerator, a.denominator
    from aggregated as a
    inner join {{ ref('indicator') }} as i on i.indicator_id = a.indicator_id
)

select l.*, i.name_zh as indicator_name, i.unit
from all_levels as l
inner join {{ ref('indicator') }} as i on i.indicator_id = l.indicator_id
