-- Current FHIR R4 resources of the EMR document bundles, one row per resource (JSON kept as text).
with current_rows as (
    {{ current_rows(source('raw', 'emr_fhir_resource')) }}
)

select
    {{ key(['r._org_code', 'r._source_key']) }} as resource_key,
    {{ key(['r._org_code', 'r.document_id']) }} as document_key,
    r._org_code as org_code,
    {{ clean('r.resource_type') }} as resource_type,
    {{ clean('r.resource_id') }} as resource_id,
    cast(r.resource_json as varchar) as resource_json,
    r._source_key,
    r._record_hash,
    r._batch_id,
    r._ingested_at,
    r._origin
from current_rows as r
