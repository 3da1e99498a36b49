-- Every local code in use without an approved mapping to its national code, per institution, source
-- system and value domain, with when it was first and last seen and how many current rows carry it.
-- A quality finding (never a silent NULL): map it in the seed (review_status approved) and rebuild.
{% set domains = [
    ('stg_his__patient', 'sex', 'map_his__sex', 'sex_source_value', 'sex_code'),
    ('stg_his__patient', 'id_document_type', 'map_his__id_type', 'id_type_source_value', 'id_type_code'),
    ('stg_his__patient', 'ethnicity', 'map_his__ethnicity', 'ethnicity_source_value', 'ethnicity_code'),
    ('stg_his__patient', 'marital_status', 'map_his__marital', 'marital_status_source_value', 'marital_status_code'),
    ('stg_his__patient', 'payment_method', 'map_his__payment_method', 'insurance_type_source_value', 'payment_method_code'),
    ('stg_his__encounter', 'encounter_class', 'map_his__encounter_class', 'encounter_type_source_value', 'encounter_class_code'),
    ('stg_his__encounter', 'department', 'map_his__dept', 'dept_code', 'dept_std_code'),
    ('stg_his__encounter', 'admission_route', 'map_his__admission_route', 'admission_route_source_value', 'admission_route_code'),
    ('stg_his__encounter', 'discharge_disposition', 'map_his__discharge_disposition', 'discharge_disposition_source_value', 'discharge_disposition_code'),
    ('stg_his__encounter', 'diagnosis', 'map_his__diagnosis', 'diagnosis_source_code', 'diagnosis_icd10_code'),
    ('stg_his__procedure', 'procedure', 'map_his__procedure', 'procedure_source_code', 'procedure_icd9cm3_code'),
    ('stg_his__prescription', 'drug', 'map_his__drug', 'drug_source_code', 'drug_atc_code'),
    ('stg_his__order', 'order_category', 'map_his__order_type', 'order_type_source_value', 'order_category_code'),
    ('stg_his__order', 'drug', 'map_his__drug', 'drug_source_code', 'drug_atc_code'),
    ('stg_his__fee', 'fee_category', 'map_his__fee', 'fee_category_source_value', 'fee_category_code'),
    ('stg_lis__message', 'sex', 'map_lis__sex', 'sex_source_value', 'sex_code'),
    ('stg_lis__message', 'encounter_class', 'map_lis__encounter_class', 'patient_class_source_value', 'encounter_class_code'),
    ('stg_lis__result', 'lab_item', 'map_lis__item', 'item_source_code', 'loinc_code'),
    ('stg_pacs__study', 'sex', 'map_pacs__sex', 'sex_source_value', 'sex_code'),
] %}

with unmapped as (
    {% for model, domain, mapping, source_column, code_column in domains %}
    {{ unmapped_codes(model, domain, mapping, source_column, code_column) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

merged as (
    select
        org_code, source_system, domain, mapping_seed, local_code,
        min(first_seen_at) as first_seen_at, max(last_seen_at) as last_seen_at, sum(row_count) as row_count
    from unmapped
    group by org_code, source_system, domain, mapping_seed, local_code
)

select
    {{ key(['u.org_code', 'u.source_system', 'u.domain', 'u.local_code']) }} as unmapped_key,
    u.org_code,
    u.source_system,
    u.domain,
    u.mapping_seed,
    u.local_code,
    u.first_seen_at,
    u.last_seen_at,
    u.row_count,
    coalesce(max(m.review_status), 'missing') as mapping_status
from merged as u
left join (
    {% for seed in domains | map(attribute=2) | unique %}
    select '{{ seed }}' as mapping_seed, source_system, local_code, review_status from {{ ref(seed) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
) as m on m.mapping_seed = u.mapping_seed and m.source_system = u.source_system and m.local_code = u.local_code
group by u.org_code, u.source_system, u.domain, u.mapping_seed, u.local_code, u.first_seen_at, u.last_seen_at, u.row_count
