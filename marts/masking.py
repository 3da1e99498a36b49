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


MASKS: dict[str, Callable[[str], str]] = {"name": mask_name, "id_no": mask_id_no, "phone": mask_phone}
