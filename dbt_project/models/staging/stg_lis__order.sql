-- Current HL7 OBR orders (检验申请/报告), one per order of a message.
select
    {{ key(['r._org_code', 'r.control_id', 'r.order_index']) }} as lab_order_key,
    {{ key(['r._org_code', 'r.control_id']) }} as message_key,
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.placer_order_no') }} as placer_order_no,
    {{ clean('r.filler_order_no') }} as filler_order_no,
    {{ clean('r.panel_code') }} as panel_code,
    {{ clean('r.panel_name') }} as panel_name,
    {{ try_timestamp('r.observation_time') }} as observation_time,
    {{ try_timestamp('r.specimen_received_time') }} as specimen_received_time,
    {{ clean('r.ordering_provider') }} as ordering_provider,
    {{ try_timestamp('r.result_time') }} as report_time,
    {{ clean('r.result_status') }} as result_status,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'lis_order')) }}) as r
