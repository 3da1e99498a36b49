{# The chronic-disease follow-ups (高血压 / 2型糖尿病患者随访服务记录表, 国家基本公共卫生服务规范 第三版) share one
   layout; the diabetes form adds fasting blood glucose. One macro per layer keeps the two models identical but
   for that measurement (`glucose=true`). #}

{# Staging: current version of every follow-up row, deletes removed, method and adherence decoded, measurements as
   numbers (implausible values kept as source text, measured value NULL). The same service entered twice (same
   record and visit day under a second id) is kept once: the lowest id. #}
{% macro stg_ph_followup(raw_table, glucose=false) -%}
{{ config(materialized='incremental', post_hook=["{{ drop_duplicate_services() }}"]) }}
with decoded as (
    select
        {{ key(['r._org_code', 'r.followup_no']) }} as followup_key,
        r._org_code as org_code,
        trim(r.followup_no) as followup_no,
        {{ key(['r._org_code', 'r.record_no']) }} as record_key,
        trim(r.record_no) as record_no,
        upper(nullif(trim(r.id_no), '')) as id_no,
        {{ try_date('r.visit_date') }} as visit_date,
        r.visit_method as visit_method_source_value,
        m.code as visit_method_code,
        m.name as visit_method_name,
        coalesce(m.face_to_face, false) as face_to_face,
        {{ try_number('r.sbp') }} as sbp_source_number,
        {{ try_number('r.dbp') }} as dbp_source_number,
        case when {{ try_number('r.sbp') }} between 40 and 300 then {{ try_number('r.sbp') }} end as sbp_mmhg,
        case when {{ try_number('r.dbp') }} between 20 and 200 then {{ try_number('r.dbp') }} end as dbp_mmhg,
        {%- if glucose %}
        {{ try_number('r.fbg') }} as fbg_source_number,
        case when {{ try_number('r.fbg') }} between 1 and 40 then {{ try_number('r.fbg') }} end as fbg_mmol_l,
        {%- endif %}
        r.medication_adherence as medication_adherence_source_value,
        a.code as medication_adherence_code,
        {{ try_date('r.next_visit_date') }} as next_visit_date,
        nullif(trim(r.doctor), '') as doctor,
        {{ lineage_columns('r') }}
    from ({{ current_rows_of_groups(source('raw', raw_table), 'record_no') }}) as r
    left join {{ ref('ph_code__followup_method') }} as m on m.local_value = trim(r.visit_method)
    left join {{ ref('ph_code__medication_adherence') }} as a on a.local_value = trim(r.medication_adherence)
)

select * from (
    select
        *,
        row_number() over (partition by org_code, record_no, visit_date, _op = 'D' order by followup_no)
            as _service_rank
    from decoded
) as ranked
{{ first_service_only() }}
{%- endmacro %}

{# Health record: the follow-ups of each resident (EMPI id through the follow-up's 档案编号), with the resident's age
   on the visit day and whether the visit met the control target (blood pressure < 140/90, < 150/90 from 65;
   fasting glucose < 7.0 mmol/L). #}
{% macro hr_followup(staging_model, glucose=false) -%}
{{ ph_record_config('followup_key', staging_model) }}
select
    x.empi_id,
    f.followup_key,
    f.org_code,
    f.followup_no,
    f.record_key,
    f.record_no,
    f.visit_date,
    f.visit_method_code,
    f.visit_method_name,
    f.face_to_face,
    f.sbp_mmhg,
    f.dbp_mmhg,
    {%- if glucose %}
    f.fbg_mmol_l,
    f.fbg_mmol_l < 7.0 as fbg_controlled,
    {%- endif %}
    f.medication_adherence_code,
    f.next_visit_date,
    f.doctor,
    {{ age_years('r.birth_date', 'f.visit_date') }} as age_at_visit,
    case
        when f.sbp_mmhg is null or f.dbp_mmhg is null then null
        when {{ age_years('r.birth_date', 'f.visit_date') }} >= 65 then f.sbp_mmhg < 150 and f.dbp_mmhg < 90
        else f.sbp_mmhg < 140 and f.dbp_mmhg < 90
    end as bp_controlled,
    f._source_key,
    f._record_hash,
    f._batch_id,
    f._ingested_at,
    f._origin
from {{ ref(staging_model) }} as f
left join {{ ref('stg_ph__health_record') }} as r on r.record_key = f.record_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = f.org_code and x.source_system = 'PH' and x.local_id = f.record_no
{{ ph_service_batch('f', with_record=true) }}
{%- endmacro %}
