"""PII masking as SQL expressions (identical on DuckDB and PostgreSQL): nothing leaves unmasked by default."""

from __future__ import annotations

from collections.abc import Callable


def mask_name(col: str) -> str:
    """张三丰 → 张**."""
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE left({col}, 1) || repeat('*', greatest(length({col}) - 1, 1)) END"


def mask_id_no(col: str) -> str:
    """410182198001011234 → 410182********1234 (other lengths: keep the last 2)."""
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN length({col}) >= 15 "
        f"THEN left({col}, 6) || repeat('*', length({col}) - 10) || right({col}, 4) "
        f"ELSE repeat('*', greatest(length({col}) - 2, 1)) || right({col}, 2) END"
    )


def mask_phone(col: str) -> str:
    """13812345678 → 138****5678."""
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN length({col}) >= 7 "
        f"THEN left({col}, 3) || repeat('*', length({col}) - 7) || right({col}, 4) ELSE '****' END"
    )


def mask_address(col: str) -> str:
    """河南省郑州市荥阳市乔楼镇东村12号 → 河南省郑州市荥阳市**** (county level kept, township and below hidden)."""
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN length({col}) > 9 THEN left({col}, 9) || '****' "
        f"ELSE left({col}, 3) || '****' END"
    )


MASKS: dict[str, Callable[[str], str]] = {
    "name": mask_name,
    "id_no": mask_id_no,
    "phone": mask_phone,
    "address": mask_address,
}


def pseudonym(col: str, salt: str) -> str:
    """A stable pseudonym (same value → same token, not reversible without the salt): P + 16 hex of md5."""
    quoted = salt.replace("'", "''")
    return f"CASE WHEN {col} IS NULL THEN NULL ELSE 'P' || left(md5('{quoted}' || {col}), 16) END"


def apply_policy(col: str, kind: str, policy: str, salt: str = "") -> str:
    """SQL for one identifier column under a policy: clear, masked (per kind), pseudonym or omit."""
    if policy == "clear":
        return col
    if policy == "masked":
        return MASKS[kind](col)
    if policy == "pseudonym":
        return pseudonym(col, salt)
    if policy == "omit":
        return "CAST(NULL AS VARCHAR)"
    raise ValueError(f"unknown masking policy {policy!r}")
