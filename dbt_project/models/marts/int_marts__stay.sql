-- Inpatient stays (encounter class 3) with admission and discharge days. A stay is valid when it has an
-- admission day and no discharge before it; invalid stays are left out of the bed-day indicators (the quality
-- rules report them). 出院者占用床日数 (los_days) = discharge day − admission day, a same-day stay counting 1.
-- Incremental on the encounters' landing watermark; the post-hook drops stays whose encounter left the CDR or is no
-- longer an inpatient stay.
{{ config(
    materialized='incremental',
    unique_key='encounter_key',
    incremental_strategy='delete+insert',
    post_hook=["{{ drop_gone_stays() }}"],
) }}
select
    e.encounter_key,
    e.org_code,
    cast(e.start_time as date) as admit_date,
    cast(e.end_time as date) as discharge_date,
    case
        when e.end_time is null then null
        else greatest({{ day_diff('e.start_time', 'e.end_time') }}, 1)
    end as los_days,
    e.start_time is not null and (e.end_time is null or cast(e.end_time as date) >= cast(e.start_time as date))
        as is_valid,
    e._ingested_at
from {{ ref('cdr__encounter') }} as e
where e.encounter_class_code = '3'
{%- if is_incremental() %}
    and e._ingested_at > {{ incremental_watermark() }}
{%- endif %}
