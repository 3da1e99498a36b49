-- Current version of every 2型糖尿病患者随访服务记录表 row (国家基本公共卫生服务规范 第三版): deletes removed, method and
-- adherence decoded, measurements as numbers (implausible values kept as source text, measured value NULL).
-- The same service entered twice (same record and visit day under a second id) is kept once: the lowest id.
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
        {{ try_number('r.fbg') }} as fbg_source_number,
        case when {{ try_number('r.fbg') }} between 1 and 40 then {{ try_number('r.fbg') }} end as fbg_mmol_l,
        r.medication_adherence as medication_adherence_source_value,
        a.code as medication_adherence_code,
        {{ try_date('r.next_visit_date') }} as next_visit_date,
        nullif(trim(r.doctor), '') as doctor,
        {{ lineage_columns('r') }}
    from ({{ current_rows(source('raw', 'ph_diabetes_followup')) }}) as r
    left join {{ ref('ph_code__followup_method') }} as m on m.local_value = trim(r.visit_method)
    left join {{ ref('ph_code__medication_adherence') }} as a on a.local_value = trim(r.medication_adherence)
)

select * from (
    select
        *,
        row_number() over (partition by org_code, record_no, visit_date order by followup_no) as _service_rank
    from decoded
) as ranked
where _service_rank = 1
