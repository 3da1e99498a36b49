-- Current version of every vaccination (预防接种卡 接种记录): deletes removed, vaccine decoded, dose as a number;
-- the same dose entered twice (same record, vaccine, dose and day under a second id) is kept once.
{{ config(materialized='incremental', post_hook=["{{ drop_duplicate_services() }}"]) }}
with decoded as (
    select
        {{ key(['r._org_code', 'r.vaccination_no']) }} as vaccination_key,
        r._org_code as org_code,
        trim(r.vaccination_no) as vaccination_no,
        {{ key(['r._org_code', 'r.record_no']) }} as record_key,
        trim(r.record_no) as record_no,
        upper(nullif(trim(r.id_no), '')) as id_no,
        {{ try_date('r.birth_date') }} as birth_date,
        r.vaccine_name as vaccine_source_value,
        v.code as vaccine_code,
        v.name as vaccine_name,
        cast({{ try_number('r.dose_no') }} as integer) as dose_no,
        {{ try_date('r.vaccination_date') }} as vaccination_date,
        nullif(trim(r.vaccine_lot), '') as vaccine_lot,
        nullif(trim(r.vaccination_org), '') as vaccination_org_name,
        {{ lineage_columns('r') }}
    from ({{ current_rows_of_groups(source('raw', 'ph_vaccination'), 'record_no') }}) as r
    left join {{ ref('ph_code__vaccine') }} as v on v.local_value = trim(r.vaccine_name)
)

select * from (
    select
        *,
        row_number() over (
            partition by org_code, record_no, vaccine_source_value, dose_no, vaccination_date, _op = 'D'
            order by vaccination_no
        ) as _service_rank
    from decoded
) as ranked
{{ first_service_only() }}
