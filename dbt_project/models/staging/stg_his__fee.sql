-- Current fee lines, local fee category decoded to the 病案首页 fee category.
select
    {{ key(['r._org_code', 'r._source_key']) }} as fee_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.fee_id as local_fee_id,
    {{ his_encounter_key('r._org_code', 'r._source_system', clean('r.encounter_id'), "trim(r.encounter_type) = 'ZY'") }}
        as encounter_key,
    {{ clean('r.fee_category') }} as fee_category_source_value,
    m_fee.std_code as fee_category_code,
    {{ try_decimal('r.amount') }} as amount,
    {{ try_timestamp('r.charged_at') }} as charged_at,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_fee')) }}) as r
{{ decode_join('m_fee', 'map_his__fee', 'r._source_system', 'r.fee_category') }}
