"""Staff roster (人员信息) of a synthetic HIS: every doctor id the visits use (D0001 … D<physicians>) plus nurses
and a few staff who left (soft-deleted rows), in the vendor's own shape — vendor A `GY_YGXX` with names for
职称 and 执业类别, vendor B `staff` with codes (职称: GB/T 8561-2001 专业技术职务代码; 执业类别: 医师执业类别
1 临床 2 中医 3 口腔 4 公共卫生). Drawn from its own random stream so the visits never shift."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from synthetic.population import _given, _surnames

# (name, GB/T 8561 code, weight) — doctors and nurses
DOCTOR_TITLES = (("主任医师", "231", 6), ("副主任医师", "232", 14), ("主治医师", "233", 35), ("医师", "234", 40),
                 ("医士", "235", 5))  # fmt: skip
NURSE_TITLES = (("主任护师", "241", 2), ("副主任护师", "242", 6), ("主管护师", "243", 30), ("护师", "244", 40),
                ("护士", "245", 22))  # fmt: skip
CATEGORIES = {"临床": "1", "中医": "2", "口腔": "3", "公共卫生": "4"}
NURSES_PER_DOCTOR = 0.6
LEFT_SHARE = 0.05  # staff who left: still in the roster, flagged deleted


def _category(dept_name: str) -> str:
    if "中医" in dept_name:
        return "中医"
    if "口腔" in dept_name:
        return "口腔"
    if "预防" in dept_name or "公共卫生" in dept_name:
        return "公共卫生"
    return "临床"


def _ts(value: datetime) -> str:
    return value.isoformat(" ", "seconds")


def staff_rows(vendor: str, physicians: int, departments: list[Any], start: date, seed: int) -> list[list[Any]]:
    """Roster rows in the vendor table's column order (see synthetic/his_schema.py)."""
    rng = random.Random(seed * 7 + 3)
    surnames, weights = _surnames()
    doctors = max(1, physicians)
    left = max(1, round(doctors * LEFT_SHARE))
    people = [("D", n, n > doctors) for n in range(1, doctors + left + 1)]
    people += [("N", n, False) for n in range(1, max(1, round(doctors * NURSES_PER_DOCTOR)) + 1)]
    rows = []
    for prefix, n, gone in people:
        sex = "1" if rng.random() < (0.55 if prefix == "D" else 0.08) else "2"
        name = rng.choices(surnames, weights=weights)[0] + _given(rng, sex)
        dept = rng.choice(departments)
        titles = DOCTOR_TITLES if prefix == "D" else NURSE_TITLES
        title, title_code, _ = rng.choices(titles, weights=[t[2] for t in titles])[0]
        category = _category(dept.name) if prefix == "D" else None
        updated = datetime.combine(start, datetime.min.time()) - timedelta(days=rng.randint(1, 1500), hours=-9)
        staff_id = f"{prefix}{n:04d}"
        if vendor == "vendor_a":
            rows.append([staff_id, name, "男" if sex == "1" else "女", dept.code, title, category or "护理",
                         "1" if gone else "0", _ts(updated)])  # fmt: skip
        else:
            rows.append([staff_id, name, "M" if sex == "1" else "F", dept.code, title_code,
                         CATEGORIES[category] if category else None, _ts(updated), "1" if gone else "0"])  # fmt: skip
    return rows
