-- Current fee lines of the HIS (raw.his_fee, latest version, deletes removed) with the national 病案首页 fee
-- category (seeds/indicators/fee_category_map.csv) and the encounter they belong to: outpatient fees count in
-- the month of the visit, inpatient fees in the month of discharge (出院者 of valid stays only).
with fee as (
    {{ current_rows(source('raw', 'his_fee')) }}
)

select
    {{ key(['f._org_code', 'f._source_key']) }} as fee_key,
    f._org_code as org_code,
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
    m.std_code as fee_category_code,
    c.fee_category_name,
    c.fee_group,
    f.fee_category as fee_category_source_value,
    cast({{ try_number('cast(f.amount as varchar)') }} as numeric(18, 2)) as amount,
    f._origin
from fee as f
inner join {{ ref('cdr__encounter') }} as e
    on e.org_code = f._org_code and e.local_encounter_id = f.encounter_id
left join {{ ref('fee_category_map') }} as m
    on m.source_system = f._source_system and m.local_code = trim(f.fee_category)
left join {{ ref('fee_category') }} as c on c.fee_category_code = m.std_code
