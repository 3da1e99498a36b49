-- 费用结构 per (period_type, period, institution, setting, 病案首页 fee category): amount and share of the
-- setting's total. Outpatient fees count in the month of the visit, inpatient fees in the month of discharge.
with monthly as (
    select
        f.org_code,
        {{ period_of('f.period_date', 'month') }} as month,
        {{ period_of('f.period_date', 'year') }} as year,
        f.setting,
        coalesce(f.fee_category_code, 'unmapped') as fee_category_code,
        coalesce(n.name, '未映射') as fee_category_name,
        coalesce(c.fee_group, 'unmapped') as fee_group,
        sum(f.amount) as amount
    from {{ ref('int_marts__fee') }} as f
    left join {{ ref('fee_category') }} as c on c.fee_category_code = f.fee_category_code
    {{ code_join('n', 'code__fee_category', 'f.fee_category_code') }}
    where period_date is not null and setting is not null
    group by 1, 2, 3, 4, 5, 6, 7
),

by_period as (
    select 'month' as period_type, month as period, org_code, setting, fee_category_code, fee_category_name,
        fee_group, amount
    from monthly
    union all
    select 'year', year, org_code, setting, fee_category_code, fee_category_name, fee_group, sum(amount)
    from monthly
    group by year, org_code, setting, fee_category_code, fee_category_name, fee_group
)

select
    p.period_type, p.period, p.org_code, i.type as org_type, i.grade as org_grade, p.setting,
    p.fee_category_code, p.fee_category_name, p.fee_group, p.amount,
    {{ ratio('p.amount', 'sum(p.amount) over (partition by p.period_type, p.period, p.org_code, p.setting)', 100) }}
        as share_pct
from by_period as p
inner join {{ source('ops', 'institution') }} as i on i.org_code = p.org_code
