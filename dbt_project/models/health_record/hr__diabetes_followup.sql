-- 2型糖尿病患者随访 of each resident (EMPI id through the follow-up's 档案编号), with the resident's age on the visit
-- day and whether the visit met the blood-pressure and fasting-glucose targets (macro hr_followup).
{{ hr_followup('stg_ph__diabetes_followup', glucose=true) }}
