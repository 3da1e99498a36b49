-- The HIS's own local code dictionaries as last read (category, code, name), per institution.
with current_rows as (
    {{ current_rows(source('raw', 'his_code_dict')) }}
)

select
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.category') }} as category,
    {{ clean('r.code') }} as local_code,
    {{ clean('r.name') }} as local_name,
    r._source_key,
    r._batch_id,
    r._ingested_at,
    r._origin
from current_rows as r
