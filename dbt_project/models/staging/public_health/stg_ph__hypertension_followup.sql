-- Current version of every 高血压患者随访服务记录表 row (国家基本公共卫生服务规范 第三版): deletes removed, method and
-- adherence decoded, measurements as numbers, the same service entered twice kept once (macro stg_ph_followup).
{{ stg_ph_followup('ph_hypertension_followup') }}
