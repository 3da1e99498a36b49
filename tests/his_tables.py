"""Hand-written HIS tables in both vendor schemas, with the edge cases the connector must handle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text

from synthetic.his_schema import create_statements


def vendor_a_patients() -> list[dict[str, Any]]:
    rows = []
    for i in range(1, 8):
        rows.append(
            {
                "BRID": f"A{i:04d}", "BRXM": ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊"][i - 1],
                "XB": "男" if i % 2 else "女", "CSRQ": f"19{60 + i}0{i}1{i}", "ZJLX": "1",
                "ZJHM": f"41018219{60 + i}0{i}1{i}123X", "LXDH": f"1380000000{i}", "JTDZ": "荥阳市索河街道",
                "MZ": "汉族", "HYZK": "已婚", "YBLX": "职工医保", "GXSJ": f"2026-10-0{i} 08:00:00", "ZFBZ": "0",
            }
        )  # fmt: skip
    rows[5]["ZFBZ"] = "1"  # soft-deleted patient
    rows[6]["XB"] = "不详"  # unmapped local sex code
    rows.append({**rows[0], "BRID": None, "BRXM": "无主键", "GXSJ": "2026-10-09 08:00:00"})  # no key → quarantine
    return rows


def vendor_a_visits() -> list[dict[str, Any]]:
    return [
        {"GHID": f"G{i:05d}", "BRID": f"A{(i % 5) + 1:04d}", "JZLX": "1" if i % 3 else "2",
         "GHSJ": f"2026-10-1{i % 10} 09:{i:02d}:00", "KSDM": "0101", "KSMC": "内科门诊", "YSGH": "D01",
         "ZDDM": "ZD0001", "ZDMC": "高血压", "GXSJ": f"2026-10-1{i % 10} 09:{i:02d}:00", "ZFBZ": "0"}
        for i in range(1, 11)
    ]  # fmt: skip


def vendor_b_patients() -> list[dict[str, Any]]:
    return [
        {"patient_id": f"B{i:04d}", "patient_name": ["孙丽", "周杰", "吴敏"][i - 1], "gender": "F" if i != 2 else "M",
         "birthday": f"198{i}-0{i}-1{i}", "id_card_type": "ID", "id_card_no": f"4101821980010{i}1234",
         "mobile": f"1390000000{i}", "address": "荥阳市乔楼镇", "nation": "01", "marriage": "M", "insurance": "03",
         "last_modified": f"2026-10-0{i} 10:00:00", "is_deleted": "0"}
        for i in range(1, 4)
    ]  # fmt: skip


def vendor_b_visits() -> list[dict[str, Any]]:
    return [
        {"visit_id": "V1", "patient_id": "B0001", "visit_type": "IP", "visit_time": "2026-10-05 10:00:00",
         "discharge_time": "2026-10-09 10:00:00", "dept_code": "03", "dept_name": "外科", "doctor_id": "D9",
         "bed_no": "12", "admit_source": "2", "discharge_disposition": "1", "diag_code": "K35.8",
         "diag_name": "急性阑尾炎", "last_modified": "2026-10-09 11:00:00", "is_deleted": "0"},
        {"visit_id": "V2", "patient_id": "B0009", "visit_type": "OP", "visit_time": "2026-10-06 08:30:00",
         "discharge_time": None, "dept_code": "01", "dept_name": "全科", "doctor_id": "D1", "bed_no": None,
         "admit_source": None, "discharge_disposition": None, "diag_code": "J06.9", "diag_name": "上呼吸道感染",
         "last_modified": "2026-10-06 08:30:00", "is_deleted": "0"},
    ]  # fmt: skip


def write_tables(url: str, vendor: str) -> None:
    """(Re)create one vendor's tables at a SQLAlchemy URL and fill them."""
    engine = create_engine(url)
    if vendor == "vendor_a":
        data = {"GY_BRXX": vendor_a_patients(), "MZ_GHXX": vendor_a_visits(), "ZY_BAXX": []}
    else:
        data = {"patient": vendor_b_patients(), "visit": vendor_b_visits()}
    with engine.begin() as conn:
        for statement in create_statements(vendor):
            conn.execute(text(f"DROP TABLE IF EXISTS {statement.split()[2]}"))
            conn.execute(text(statement))
        for table, rows in data.items():
            if rows:
                cols = list(rows[0])
                conn.execute(
                    text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"), rows
                )
    engine.dispose()


def execute(url: str, sql: str, params: dict[str, Any] | None = None) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), params or {})
    engine.dispose()


@contextmanager
def scratch_mariadb(server_url: str) -> Iterator[str]:
    """The URL of a new utf8mb4 database on the MariaDB server `server_url`, dropped afterwards."""
    name = f"hutong_test_his_{uuid.uuid4().hex[:10]}"
    server = create_engine(server_url)
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    try:
        yield f"{server_url}/{name}?charset=utf8mb4"
    finally:
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()
