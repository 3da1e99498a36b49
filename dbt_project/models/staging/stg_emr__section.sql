-- Current CDA sections (code, title, narrative text, coded entries) of the EMR documents.
select
    {{ key(['r._org_code', 'r._source_key']) }} as section_key,
    {{ key(['r._org_code', 'r.document_id']) }} as document_key,
    r._org_code as org_code,
    cast(r.ordinal as integer) as ordinal,
    {{ clean('r.section_code') }} as section_code,
    {{ clean('r.section_title') }} as section_title,
    {{ clean('r.section_text') }} as section_text,
    {{ clean('r.entry_codes') }} as entry_codes,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'emr_section')) }}) as r
