"""DDL of the two synthetic HIS vendor schemas (the tables `connectors/his_vendors/*.yaml` map)."""

from __future__ import annotations

import re
from functools import cache

VENDOR_A: dict[str, str] = {
    "GY_BRXX": "BRID VARCHAR(20), BRXM VARCHAR(50), XB VARCHAR(4), CSRQ VARCHAR(8), ZJLX VARCHAR(2), "
    "ZJHM VARCHAR(20), LXDH VARCHAR(20), JTDZ VARCHAR(200), MZ VARCHAR(20), HYZK VARCHAR(10), YBLX VARCHAR(20), "
    "GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "MZ_GHXX": "GHID VARCHAR(20), BRID VARCHAR(20), JZLX VARCHAR(2), GHSJ VARCHAR(19), KSDM VARCHAR(10), "
    "KSMC VARCHAR(50), YSGH VARCHAR(10), ZDDM VARCHAR(20), ZDMC VARCHAR(100), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "ZY_BAXX": "ZYH VARCHAR(20), BRID VARCHAR(20), RYSJ VARCHAR(19), CYSJ VARCHAR(19), RYKS VARCHAR(10), "
    "RYKSMC VARCHAR(50), ZZYS VARCHAR(10), CWH VARCHAR(10), RYTJ VARCHAR(20), LYFS VARCHAR(20), ZDDM VARCHAR(20), "
    "ZDMC VARCHAR(100), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "GY_DMZD": "DMLB VARCHAR(10), DMZ VARCHAR(20), DMMC VARCHAR(100)",
    "MZ_CFMX": "CFMXID VARCHAR(30), GHID VARCHAR(20), BRID VARCHAR(20), YPDM VARCHAR(20), YPMC VARCHAR(100), "
    "GG VARCHAR(50), SL VARCHAR(10), DW VARCHAR(10), DJ VARCHAR(12), JE VARCHAR(12), KFSJ VARCHAR(19), "
    "YSGH VARCHAR(10), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "ZY_YZ": "YZID VARCHAR(30), ZYH VARCHAR(20), BRID VARCHAR(20), YZLX VARCHAR(4), YZNR VARCHAR(200), "
    "YPDM VARCHAR(20), KSSJ VARCHAR(19), TZSJ VARCHAR(19), YSGH VARCHAR(10), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "ZY_SSJL": "SSID VARCHAR(30), ZYH VARCHAR(20), BRID VARCHAR(20), SSDM VARCHAR(20), SSMC VARCHAR(100), "
    "SSRQ VARCHAR(19), SSYS VARCHAR(10), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "SF_FYMX": "FYID VARCHAR(30), JZLSH VARCHAR(20), JZLX VARCHAR(2), FYLB VARCHAR(10), JE VARCHAR(12), "
    "SFSJ VARCHAR(19), GXSJ VARCHAR(19), ZFBZ VARCHAR(1)",
    "GY_YGXX": "YGGH VARCHAR(10), YGXM VARCHAR(50), XB VARCHAR(4), KSDM VARCHAR(10), ZC VARCHAR(20), "
    "ZYLB VARCHAR(20), ZFBZ VARCHAR(1), GXSJ VARCHAR(19)",
}
VENDOR_B: dict[str, str] = {
    "patient": "patient_id VARCHAR(20), patient_name VARCHAR(50), gender VARCHAR(1), birthday DATE, "
    "id_card_type VARCHAR(2), id_card_no VARCHAR(20), mobile VARCHAR(20), address VARCHAR(200), nation VARCHAR(2), "
    "marriage VARCHAR(1), insurance VARCHAR(2), last_modified DATETIME, is_deleted VARCHAR(1)",
    "visit": "visit_id VARCHAR(20), patient_id VARCHAR(20), visit_type VARCHAR(2), visit_time DATETIME, "
    "discharge_time DATETIME, dept_code VARCHAR(10), dept_name VARCHAR(50), doctor_id VARCHAR(10), "
    "bed_no VARCHAR(10), admit_source VARCHAR(2), discharge_disposition VARCHAR(2), diag_code VARCHAR(20), "
    "diag_name VARCHAR(100), last_modified DATETIME, is_deleted VARCHAR(1)",
    "code_dict": "category VARCHAR(20), code VARCHAR(20), name VARCHAR(100)",
    "prescription": "rx_id VARCHAR(30), visit_id VARCHAR(20), patient_id VARCHAR(20), drug_code VARCHAR(20), "
    "drug_name VARCHAR(100), atc_code VARCHAR(10), spec VARCHAR(50), quantity DECIMAL(10,2), unit VARCHAR(10), "
    "unit_price DECIMAL(12,2), amount DECIMAL(12,2), prescribed_at DATETIME, doctor_id VARCHAR(10), "
    "last_modified DATETIME, is_deleted VARCHAR(1)",
    "inpatient_order": "order_id VARCHAR(30), visit_id VARCHAR(20), patient_id VARCHAR(20), order_type VARCHAR(1), "
    "content VARCHAR(200), drug_code VARCHAR(20), start_at DATETIME, stop_at DATETIME, doctor_id VARCHAR(10), "
    "last_modified DATETIME, is_deleted VARCHAR(1)",
    "surgery": "surgery_id VARCHAR(30), visit_id VARCHAR(20), patient_id VARCHAR(20), icd9cm3_code VARCHAR(20), "
    "name VARCHAR(100), performed_at DATETIME, surgeon_id VARCHAR(10), last_modified DATETIME, is_deleted VARCHAR(1)",
    "fee": "fee_id VARCHAR(30), visit_id VARCHAR(20), fee_category VARCHAR(4), amount DECIMAL(12,2), "
    "charged_at DATETIME, last_modified DATETIME, is_deleted VARCHAR(1)",
    "staff": "staff_id VARCHAR(10), staff_name VARCHAR(50), gender VARCHAR(1), dept_code VARCHAR(10), "
    "title_code VARCHAR(4), practice_category VARCHAR(2), last_modified DATETIME, is_deleted VARCHAR(1)",
}
SCHEMAS = {"vendor_a": VENDOR_A, "vendor_b": VENDOR_B}


@cache
def columns(vendor: str, table: str) -> list[str]:
    """Column names of a table, in order (commas inside type parentheses such as DECIMAL(10,2) ignored)."""
    return [part.strip().split()[0] for part in re.split(r",(?![^()]*\))", SCHEMAS[vendor][table])]


def create_statements(vendor: str) -> list[str]:
    return [f"CREATE TABLE {name} ({cols})" for name, cols in SCHEMAS[vendor].items()]
