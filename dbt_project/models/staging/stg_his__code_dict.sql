-- The HIS's own local code dictionaries as last read (category, code, name), per institution.
select
    r._org_code as org_code,
    r._source_system as source_system,
    {{ clean('r.category') }} as category,
    {{ clean('r.code') }} as local_code,
    {{ clean('r.name') }} as local_name,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_code_dict')) }}) as r
