-- Current HL7 OBX results, local item code decoded to LOINC through the approved map (the LOINC the LIS
-- sent in OBX-3 alternate coding is kept beside it), numeric values parsed.
select
    {{ key(['r._org_code', 'r._source_key']) }} as lab_result_key,
    {{ key(['r._org_code', 'r.control_id', 'r.order_index']) }} as lab_order_key,
    {{ key(['r._org_code', 'r.control_id']) }} as message_key,
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.item_code') }} as item_source_code,
    {{ clean('r.item_name') }} as item_name,
    m_item.std_code as loinc_code,
    case when trim(r.alt_coding_system) = 'LN' then {{ clean('r.alt_code') }} end as loinc_code_reported,
    {{ clean('r.value_type') }} as value_type,
    {{ clean('r.value') }} as result_value,
    {{ try_decimal('r.value') }} as result_numeric,
    {{ clean('r.units') }} as result_unit,
    {{ clean('r.reference_range') }} as reference_range,
    {{ clean('r.abnormal_flags') }} as abnormal_flag,
    {{ clean('r.result_status') }} as result_status,
    {{ try_timestamp('r.observation_time') }} as observation_time,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'lis_result')) }}) as r
{{ decode_join('m_item', 'map_lis__item', 'r._source_system', 'r.item_code') }}
