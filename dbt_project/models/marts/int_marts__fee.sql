-- CDR fee lines (cdr__fee: current versions, local category decoded to the 病案首页 fee category by the
-- terminology map) with the encounter they belong to: outpatient fees count in the month of the visit, inpatient
-- fees in the month of discharge (出院者 of valid stays only). Fee lines without an encounter are left out. Only
-- what the marts aggregate is kept (the fee line's lineage is cdr__fee's, by fee_key); the marts join the
-- category's name and indicator group (seeds/indicators/fee_category.csv: drug, diagnosis ...) themselves.
-- Incremental: a run re-derives the fee lines landed after the watermark (the newer landing of fee and encounter)
-- and every fee line of an encounter landed after it (a union of the two, each filter on its own side); the post-hook drops lines whose fee or encounter left the CDR.
{{ config(
    materialized='incremental',
    unique_key='fee_key',
    incremental_strategy='delete+insert',
    post_hook=["{{ drop_gone_fees() }}"],
) }}
{%- set batches = [none] if not is_incremental() else ['f', 'e'] %}
{%- for side in batches %}
select
    f.fee_key,
    f.org_code,
    e.encounter_key,
    case e.encounter_class_code when '3' then 'inpatient' when '1' then 'outpatient' when '2' then 'outpatient' end
        as setting,
    case
        when e.encounter_class_code = '3' and cast(e.end_time as date) >= cast(e.start_time as date)
            then cast(e.end_time as date)
        when e.encounter_class_code = '3' then null
        else cast(e.start_time as date)
    end as period_date,
    f.fee_category_code,
    cast(f.amount as numeric(18, 2)) as amount,
    greatest(f._ingested_at, e._ingested_at) as _ingested_at
from {{ ref('cdr__fee') }} as f
inner join {{ ref('cdr__encounter') }} as e on e.encounter_key = f.encounter_key
{%- if side %}
where {{ side }}._ingested_at > {{ incremental_watermark() }}
{%- endif %}
{%- if not loop.last %}
union
{%- endif %}
{%- endfor %}
