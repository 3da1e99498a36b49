{# Raw tables the staging models read, created empty when no connector has landed that kind yet (a county
   without PACS still builds). The connectors' warehouse.raw.ensure_raw_table adds columns a mapping grows;
   the payload columns here are the ones the connectors land today (all text, as received). #}
{% macro hutong_raw_payload_columns() -%}
{{ return({
    'emr_document': ['document_id', 'document_id_root', 'template_id', 'type_code', 'type_name', 'title', 'effective_time', 'patient_id', 'patient_id_root', 'id_card_no', 'patient_name', 'sex_code', 'birth_date', 'author_id', 'custodian_org_code', 'encounter_key', 'admission_time', 'discharge_time', 'department', 'diagnosis_codes', 'format', 'document_text'],
    'emr_fhir_resource': ['document_id', 'resource_type', 'resource_id', 'resource_json'],
    'emr_section': ['document_id', 'ordinal', 'section_code', 'section_title', 'section_text', 'entry_codes'],
    'his_code_dict': ['category', 'code', 'name'],
    'his_encounter': ['encounter_id', 'patient_id', 'encounter_type', 'start_time', 'end_time', 'dept_code', 'dept_name', 'doctor_id', 'bed_no', 'admission_route', 'discharge_disposition', 'diagnosis_code', 'diagnosis_name'],
    'his_fee': ['fee_id', 'encounter_id', 'encounter_type', 'fee_category', 'amount', 'charged_at'],
    'his_order': ['order_id', 'encounter_id', 'patient_id', 'order_type', 'content', 'drug_code', 'start_time', 'stop_time', 'doctor_id'],
    'his_patient': ['patient_id', 'name', 'sex', 'birth_date', 'id_type', 'id_no', 'phone', 'address', 'ethnicity', 'marital_status', 'insurance_type'],
    'his_prescription': ['prescription_id', 'encounter_id', 'patient_id', 'drug_code', 'drug_name', 'atc_code', 'spec', 'quantity', 'unit', 'unit_price', 'amount', 'prescribed_at', 'doctor_id'],
    'his_procedure': ['procedure_id', 'encounter_id', 'patient_id', 'procedure_code', 'procedure_name', 'performed_at', 'surgeon_id'],
    'lis_message': ['control_id', 'message_type', 'trigger_event', 'sending_application', 'sending_facility', 'message_time', 'processing_id', 'version_id', 'character_set', 'patient_id', 'patient_id_authority', 'patient_id_type', 'family_name', 'given_name', 'birth_date', 'sex', 'address', 'phone', 'id_card_no', 'patient_class', 'department', 'attending_doctor', 'visit_number', 'message_text'],
    'lis_order': ['control_id', 'order_index', 'set_id', 'placer_order_no', 'filler_order_no', 'panel_code', 'panel_name', 'panel_coding_system', 'observation_time', 'specimen_received_time', 'ordering_provider', 'result_time', 'result_status'],
    'lis_result': ['control_id', 'order_index', 'result_index', 'set_id', 'value_type', 'item_code', 'item_name', 'item_coding_system', 'alt_code', 'alt_name', 'alt_coding_system', 'value', 'units', 'reference_range', 'abnormal_flags', 'result_status', 'observation_time'],
    'pacs_report': ['accession_number', 'org_code', 'patient_id', 'patient_name', 'encounter_key', 'exam_code', 'exam_name', 'modality', 'study_time', 'findings', 'impression', 'abnormal', 'reporting_doctor', 'verifying_doctor', 'report_time'],
    'pacs_study': ['sop_instance_uid', 'sop_class_uid', 'study_instance_uid', 'series_instance_uid', 'accession_number', 'patient_id', 'patient_id_issuer', 'patient_name', 'patient_sex', 'patient_birth_date', 'admission_id', 'modality', 'body_part', 'study_date', 'study_time', 'study_id', 'study_description', 'series_description', 'series_number', 'instance_number', 'institution_name', 'referring_physician', 'character_set'],
    'ph_diabetes_followup': ['followup_no', 'record_no', 'id_no', 'name', 'visit_date', 'visit_method', 'sbp', 'dbp', 'medication_adherence', 'next_visit_date', 'doctor', 'fbg', 'extra_columns', 'source_format', 'source_encoding'],
    'ph_elderly_checkup': ['checkup_no', 'record_no', 'id_no', 'name', 'checkup_date', 'height', 'weight', 'sbp', 'dbp', 'fbg', 'self_care', 'extra_columns', 'source_format', 'source_encoding'],
    'ph_health_record': ['record_no', 'id_no', 'name', 'sex', 'birth_date', 'address', 'phone', 'record_date', 'record_org', 'responsible_doctor', 'extra_columns', 'source_format', 'source_encoding'],
    'ph_hypertension_followup': ['followup_no', 'record_no', 'id_no', 'name', 'visit_date', 'visit_method', 'sbp', 'dbp', 'medication_adherence', 'next_visit_date', 'doctor', 'extra_columns', 'source_format', 'source_encoding'],
    'ph_vaccination': ['vaccination_no', 'record_no', 'id_no', 'name', 'birth_date', 'vaccine_name', 'dose_no', 'vaccination_date', 'vaccine_lot', 'vaccination_org', 'extra_columns', 'source_format', 'source_encoding'],
}) }}
{%- endmacro %}

{% macro hutong_ensure_raw_tables() -%}
    create schema if not exists raw;
    {%- for table, columns in hutong_raw_payload_columns().items() %}
    create table if not exists raw.{{ table }} (
        {%- for c in columns %}
        {{ c }} {{ 'text' if target.type == 'postgres' else 'varchar' }},
        {%- endfor %}
        _org_code varchar, _source_system varchar, _source_key varchar, _batch_id varchar,
        _ingested_at timestamp, _source_updated_at timestamp, _op varchar, _record_hash varchar, _origin varchar
    );
    {%- if target.type == 'postgres' %}
    create index if not exists {{ table }}_key_hash on raw.{{ table }} (_org_code, _source_key, _record_hash);
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
