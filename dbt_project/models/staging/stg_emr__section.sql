-- Current CDA sections (code, title, narrative text, coded entries) of the EMR documents.
with current_rows as (
    {{ current_rows(source('raw', 'emr_section')) }}
)

select
    {{ key(['r._org_code', 'r._source_key']) }} as section_key,
    {{ key(['r._org_code', 'r.document_id']) }} as document_key,
    r._org_code as org_code,
    cast(r.ordinal as integer) as ordinal,
    {{ clean('r.section_code') }} as section_code,
    {{ clean('r.section_title') }} as section_title,
    {{ clean('r.section_text') }} as section_text,
    {{ clean('r.entry_codes') }} as entry_codes,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._origin
from current_rows as r
