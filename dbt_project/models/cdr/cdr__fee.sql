-- CDR fee line (病案首页 费用分类): one row per charged fee line, local category decoded.
-- Incremental on the landing watermark, deletes applied by a post-hook.
{{ config(
    materialized='incremental',
    unique_key='fee_key',
    incremental_strategy='delete+insert',
    post_hook=["{{ drop_deleted('fee_key', source('raw', 'his_fee')) }}"],
) }}

select
    f.fee_key,
    f.encounter_key,
    f.org_code,
    f.source_system,
    f.local_fee_id,
    f.fee_category_source_value,
    f.fee_category_code,
    c_fee_category.name as fee_category_name,
    f.amount,
    f.charged_at,
    f._source_key,
    f._record_hash,
    f._batch_id,
    f._ingested_at,
    f._source_updated_at,
    f._origin
from {{ ref('stg_his__fee') }} as f
{{ code_join('c_fee_category', 'code__fee_category', 'f.fee_category_code') }}
{{ after_watermark('f._ingested_at') }}
