-- 高血压患者随访 of each resident (EMPI id through the follow-up's 档案编号), with the resident's age on the visit
-- day and whether the visit met the blood-pressure target (macro hr_followup).
{{ hr_followup('stg_ph__hypertension_followup') }}
