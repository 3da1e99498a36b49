-- 2型糖尿病患者随访 of each resident (EMPI id through the follow-up's 档案编号), with the resident's age on the visit
-- day and whether the visit met the target of 国家基本公共卫生服务规范 (第三版).
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
    f.fbg_mmol_l,
    f.fbg_mmol_l < 7.0 as fbg_controlled,
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
    f._origin
from {{ ref('stg_ph__diabetes_followup') }} as f
left join {{ ref('stg_ph__health_record') }} as r on r.record_key = f.record_key
left join {{ source('mpi', 'xref') }} as x
    on x.org_code = f.org_code and x.source_system = 'PH' and x.local_id = f.record_no
