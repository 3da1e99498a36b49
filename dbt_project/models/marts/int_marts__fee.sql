-- CDR fee lines (cdr__fee: current versions, local category decoded to the 病案首页 fee category by the
-- terminology map) with the group the indicators use (seeds/indicators/fee_category.csv: drug, diagnosis ...)
-- and the encounter they belong to: outpatient fees count in the month of the visit, inpatient fees in the
-- month of discharge (出院者 of valid stays only). Fee lines without an encounter are left out.
-- A view: the two marts that read it aggregate it at once; writing out every fee line again cost more.
{{ config(materialized='view') }}
select
    f.fee_key,
    f.org_code,
    e.encounter_key,
    e.encounter_class_code,
    case e.encounter_class_code when '3' then 'inpatient' when '1' then 'outpatient' when '2' then 'outpatient' end
        as setting,
    case
        when e.encounter_class_code = '3' and cast(e.end_time as date) >= cast(e.start_time as date)
            then cast(e.end_time as date)
        when e.encounter_class_code = '3' then null
        else cast(e.start_time as date)
    end as period_date,
    f.fee_category_code,
    f.fee_category_name,
    c.fee_group,
    f.fee_category_source_value,
    cast(f.amount as numeric(18, 2)) as amount,
    f._origin
from {{ ref('cdr__fee') }} as f
inner join {{ ref('cdr__encounter') }} as e on e.encounter_key = f.encounter_key
left join {{ ref('fee_category') }} as c on c.fee_category_code = f.fee_category_code
