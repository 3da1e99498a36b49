-- Current version of every 65+ health check-up (老年人健康体检表): deletes removed, measurements as numbers
-- (implausible values NULL), self-care assessment decoded; a check-up entered twice on one day is kept once.
{{ config(materialized='incremental', post_hook=["{{ drop_duplicate_services() }}"]) }}
with decoded as (
    select
        {{ key(['r._org_code', 'r.checkup_no']) }} as checkup_key,
        r._org_code as org_code,
        trim(r.checkup_no) as checkup_no,
        {{ key(['r._org_code', 'r.record_no']) }} as record_key,
        trim(r.record_no) as record_no,
        upper(nullif(trim(r.id_no), '')) as id_no,
        {{ try_date('r.checkup_date') }} as checkup_date,
        case when {{ try_number('r.height') }} between 80 and 230 then {{ try_number('r.height') }} end as height_cm,
        case when {{ try_number('r.weight') }} between 20 and 250 then {{ try_number('r.weight') }} end as weight_kg,
        case when {{ try_number('r.sbp') }} between 40 and 300 then {{ try_number('r.sbp') }} end as sbp_mmhg,
        case when {{ try_number('r.dbp') }} between 20 and 200 then {{ try_number('r.dbp') }} end as dbp_mmhg,
        case when {{ try_number('r.fbg') }} between 1 and 40 then {{ try_number('r.fbg') }} end as fbg_mmol_l,
        r.self_care as self_care_source_value,
        s.code as self_care_code,
        s.name as self_care_name,
        {{ lineage_columns('r') }}
    from ({{ current_rows_of_groups(source('raw', 'ph_elderly_checkup'), 'record_no') }}) as r
    left join {{ ref('ph_code__self_care') }} as s on s.local_value = trim(r.self_care)
)

select * from (
    select
        *,
        row_number() over (partition by org_code, record_no, checkup_date, _op = 'D' order by checkup_no)
            as _service_rank
    from decoded
) as ranked
{{ first_service_only() }}
