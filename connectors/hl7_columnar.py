"""Columnar HL7 v2 extraction for whole files: segments, fields and components split by polars in Rust.

Same columns and values as `connectors.hl7.extract` (tests prove all three paths agree). Messages this path is not
sure about — headless segments, odd segment ids, short MSH, no control id, an unaccepted type, escape sequences,
non-default separators — are handed back to the per-message path, which gives the exact reason or value.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from connectors import hl7

DEFAULT_MSH = "MSH|^~\\&"
SEGMENT_FIELD = r"^[A-Z][A-Z0-9]{2}(?:\||$)"  # the segment id field: three upper-case letters/digits


@dataclass
class ColumnarResult:
    """Messages this path extracted (frames keyed by message group) and the texts it leaves to the slow path."""

    messages: pl.DataFrame  # file, group, line, message_text, <message columns (control_id among them)>
    orders: pl.DataFrame  # file, group, order_index, <order columns>
    results: pl.DataFrame  # file, group, order_index, result_index, <result columns>
    leftovers: list[tuple[int, str, int]]  # (file, text, first line) of groups for the per-message path


def _value(fields: pl.Expr, path: hl7.FieldPath) -> pl.Expr:
    """Expression picking one field path from a List[str] of fields (first repetition; '' → null)."""
    index = path.field - 1 if path.segment == "MSH" else path.field
    value = _first_repetition(fields.list.get(index, null_on_oob=True))
    if path.component is not None:
        value = value.str.split("^").list.get(path.component - 1, null_on_oob=True)
        if path.subcomponent is not None:
            value = value.str.split("&").list.get(path.subcomponent - 1, null_on_oob=True)
    return pl.when(value == "").then(None).otherwise(value)


def _first_repetition(value: pl.Expr) -> pl.Expr:
    return pl.when(value.str.contains("~", literal=True)).then(value.str.split("~").list.first()).otherwise(value)


def _pick(frame: pl.DataFrame, paths: dict[str, hl7.FieldPath], keep: list[str]) -> pl.DataFrame:
    """Columns for `paths` from the `fields` list column: each field and each component list built once."""
    fields: dict[int, str] = {}
    comps: set[int] = set()
    for path in paths.values():
        index = path.field - 1 if path.segment == "MSH" else path.field
        fields[index] = f"_f{index}"
        if path.component is not None:
            comps.add(index)
    staged = frame.select(
        *keep,
        *[_first_repetition(pl.col("fields").list.get(i, null_on_oob=True)).alias(n) for i, n in fields.items()],
    )
    staged = staged.with_columns(pl.col(fields[i]).str.split("^").alias(f"_c{i}") for i in comps)
    out = []
    for column, path in paths.items():
        index = path.field - 1 if path.segment == "MSH" else path.field
        if path.component is None:
            value = pl.col(fields[index])
        else:
            value = pl.col(f"_c{index}").list.get(path.component - 1, null_on_oob=True)
            if path.subcomponent is not None:
                value = value.str.split("&").list.get(path.subcomponent - 1, null_on_oob=True)
        out.append(pl.when(value == "").then(None).otherwise(value).alias(column))
    return staged.select(*keep, *out)


def _segments(texts: list[str]) -> pl.DataFrame:
    """Non-empty segments of each text (`file` = its index) with line numbers as `hl7.split_segments` counts them."""
    frame = pl.DataFrame({"text": pl.Series(texts, dtype=pl.String)}).with_row_index("file")
    if any("\n" in text for text in texts):
        frame = frame.with_columns(
            pl.col("text").str.replace_all("\r\n", "\r", literal=True).str.replace_all("\n", "\r", literal=True)
        )
    frame = frame.select(pl.col("file").cast(pl.Int64), pl.col("text").str.split("\r").alias("seg")).explode("seg")
    frame = frame.filter(pl.col("seg").str.strip_chars() != "").with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("file").alias("line"),
        pl.col("seg").str.slice(0, 3).alias("seg_id"),
    )
    return frame.select("file", "line", "seg", "seg_id").filter(~pl.col("seg_id").is_in(list(hl7.ENVELOPE)))


def _groups(frame: pl.DataFrame, one_patient_per_message: bool) -> pl.DataFrame:
    """Number the messages: a group starts at MSH, or at a PID after results (when one patient per message)."""
    is_result = pl.col("seg_id").is_in(["OBR", "OBX"])
    file_start = pl.col("file") != pl.col("file").shift(1, fill_value=-1)
    anchor = pl.col("seg_id").is_in(["MSH", "PID"]) | file_start
    frame = frame.with_columns(anchor.cast(pl.Int64).cum_sum().alias("_anchor"))
    # the row before an anchor belongs to the previous block: its flag says whether that block had results
    frame = frame.with_columns(is_result.any().over("_anchor").shift(1, fill_value=False).alias("_prev_has_result"))
    boundary = (pl.col("seg_id") == "MSH") | file_start
    if one_patient_per_message:
        boundary = boundary | ((pl.col("seg_id") == "PID") & pl.col("_prev_has_result"))
    frame = frame.with_columns(boundary.cast(pl.Int64).cum_sum().alias("group"))
    return frame.drop("_anchor", "_prev_has_result")


def extract_file(text: str, one_patient_per_message: bool = True) -> ColumnarResult:
    """Extract every message of a file; uncertain messages come back in `leftovers`."""
    return extract_files([text], one_patient_per_message)


def extract_files(texts: list[str], one_patient_per_message: bool = True) -> ColumnarResult:
    """Extract every message of several files at once (column `file` = index in `texts`; groups never span files).

    Uncertain messages come back in `leftovers` as (file index, text, first line).
    """
    spec = hl7.field_spec()
    frame = _groups(_segments(texts), one_patient_per_message)
    frame = frame.with_columns(pl.col("seg").str.split("|").alias("fields"))
    first = frame.group_by("group", maintain_order=True).agg(
        pl.col("file").first(),
        pl.col("line").first(),
        pl.col("seg_id").first().alias("first_id"),
        (pl.col("seg").str.join("\r") + "\r").alias("message_text"),
        (~pl.col("seg").str.contains(SEGMENT_FIELD)).any().alias("_bad_id"),
        (
            pl.when(pl.col("seg_id") == "MSH").then(pl.col("seg").str.slice(8)).otherwise(pl.col("seg"))
            .str.contains("\\", literal=True).any()
        ).alias("_escaped"),
    )  # fmt: skip
    headers = {
        seg: frame.filter(pl.col("seg_id") == seg).group_by("group", maintain_order=True).agg(pl.col("fields").first())
        for seg in ("MSH", "PID", "PV1")
    }
    messages = first
    for seg, header in headers.items():
        paths = {c: p for c, p in spec["message"].items() if p.segment == seg}
        if seg == "MSH":
            paths |= {"_control": hl7.FieldPath("MSH", 10), "_type1": hl7.FieldPath("MSH", 9, 1),
                      "_type2": hl7.FieldPath("MSH", 9, 2)}  # fmt: skip
            header = header.with_columns(
                pl.col("fields").list.len().alias("_msh_len"),
                pl.col("fields").list.get(1, null_on_oob=True).alias("_encoding"),
            )
            picked = _pick(header, paths, ["group", "_msh_len", "_encoding"]).with_columns(
                (pl.col("_type1").fill_null("None") + "^" + pl.col("_type2").fill_null("None")).alias("_type")
            )
        else:
            picked = _pick(header, paths, ["group"])
        messages = messages.join(picked, on="group", how="left")
    accepted = list(spec["accepted_types"])
    uncertain = (
        (pl.col("first_id") != "MSH")
        | pl.col("_bad_id")
        | pl.col("_escaped")
        | (pl.col("_encoding") != DEFAULT_MSH[4:])
        | (pl.col("_msh_len") < 12)
        | pl.col("_control").is_null()
        | ~pl.col("_type").is_in(accepted)
    ).fill_null(True)
    messages = messages.with_columns(uncertain.alias("_uncertain"))
    unsure = messages.filter(pl.col("_uncertain"))
    leftovers = list(zip(unsure["file"].to_list(), unsure["message_text"].to_list(), unsure["line"].to_list(),
                         strict=True))  # fmt: skip
    certain = messages.filter(~pl.col("_uncertain"))
    keep = set(certain["group"].to_list()) if certain.height != messages.height else None
    body = frame if keep is None else frame.filter(pl.col("group").is_in(list(keep)))
    body = body.filter(pl.col("seg_id").is_in(["OBR", "OBX"])).with_columns(
        (pl.col("seg_id") == "OBR").cast(pl.Int64).cum_sum().over("group").alias("order_index")
    )
    obr = body.filter(pl.col("seg_id") == "OBR")
    obx = body.filter(pl.col("seg_id") == "OBX").with_columns(
        pl.int_range(1, pl.len() + 1).over("group").alias("result_index")
    )
    orders = _pick(obr, spec["order"], ["file", "group", "order_index"])
    results = _pick(obx, spec["result"], ["file", "group", "order_index", "result_index"])
    columns = ["file", "group", "line", "message_text", *spec["message"]]  # lis_fields.yaml maps control_id to MSH-10
    return ColumnarResult(certain.select(columns), orders, results, leftovers)


def hl7_time(column: str) -> pl.Expr:
    """Vectorised `hl7.hl7_time`: leading digits of an HL7 DTM as a datetime (null when unreadable)."""
    digits = pl.col(column).str.extract(r"^(\d+)", 1)
    length = digits.str.len_chars()

    def parse(width: int, fmt: str) -> pl.Expr:
        return digits.str.slice(0, width).str.strptime(pl.Datetime("us"), fmt, strict=False)

    return (
        pl.when(length >= 14).then(parse(14, "%Y%m%d%H%M%S"))
        .when(length >= 12).then(parse(12, "%Y%m%d%H%M"))
        .when(length >= 8).then(parse(8, "%Y%m%d"))
        .otherwise(None)
    )  # fmt: skip
