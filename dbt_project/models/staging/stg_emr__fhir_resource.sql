-- Current FHIR R4 resources of the EMR document bundles, one row per resource (JSON kept as text).
select
    {{ key(['r._org_code', 'r._source_key']) }} as resource_key,
    {{ key(['r._org_code', 'r.document_id']) }} as document_key,
    r._org_code as org_code,
    {{ clean('r.resource_type') }} as resource_type,
    {{ clean('r.resource_id') }} as resource_id,
    cast(r.resource_json as varchar) as resource_json,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'emr_fhir_resource')) }}) as r
