-- Current version of every HIS patient row: latest by source update time, soft deletes removed, local
-- values decoded through the approved value maps (sex GB/T 2261.1, marital GB/T 2261.2, ethnicity GB 3304,
-- identity document WS 364 CV02.01.101, payment 病案首页 医疗付费方式). One row per (institution, system, id).
select
    {{ key(['r._org_code', 'r._source_system', 'r.patient_id']) }} as patient_key,
    r._org_code as org_code,
    r._source_system as source_system,
    r.patient_id as local_patient_id,
    {{ clean('r.name') }} as name,
    r.sex as sex_source_value,
    m_sex.std_code as sex_code,
    r.birth_date as birth_date_source_value,
    {{ try_date('r.birth_date') }} as birth_date,
    {{ clean('r.id_type') }} as id_type_source_value,
    m_id_type.std_code as id_type_code,
    upper({{ clean('r.id_no') }}) as id_no,
    {{ clean('r.phone') }} as phone,
    {{ clean('r.address') }} as address,
    {{ clean('r.ethnicity') }} as ethnicity_source_value,
    m_ethnicity.std_code as ethnicity_code,
    {{ clean('r.marital_status') }} as marital_status_source_value,
    m_marital.std_code as marital_status_code,
    {{ clean('r.insurance_type') }} as insurance_type_source_value,
    m_payment_method.std_code as payment_method_code,
    {{ lineage_columns('r') }}
from ({{ current_rows(source('raw', 'his_patient')) }}) as r
{{ decode_join('m_sex', 'map_his__sex', 'r._source_system', 'r.sex') }}
{{ decode_join('m_id_type', 'map_his__id_type', 'r._source_system', 'r.id_type') }}
{{ decode_join('m_ethnicity', 'map_his__ethnicity', 'r._source_system', 'r.ethnicity') }}
{{ decode_join('m_marital', 'map_his__marital', 'r._source_system', 'r.marital_status') }}
{{ decode_join('m_payment_method', 'map_his__payment_method', 'r._source_system', 'r.insurance_type') }}
