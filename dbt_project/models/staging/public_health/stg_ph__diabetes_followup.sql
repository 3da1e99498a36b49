-- Current version of every 2型糖尿病患者随访服务记录表 row (国家基本公共卫生服务规范 第三版): as the hypertension
-- follow-up plus fasting blood glucose (macro stg_ph_followup).
{{ stg_ph_followup('ph_diabetes_followup', glucose=true) }}
