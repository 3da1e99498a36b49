"""A minimal DICOM Part-10 writer for header-only files (PS3.10 file format, PS3.5 Explicit VR Little Endian).

Building a pydicom Dataset and calling `save_as` costs far more than the bytes themselves at county size, so the
synthetic PACS encodes its flat, text-only headers directly. Tags and VRs come from pydicom's data dictionary
(DICOM PS3.6), and tests check the bytes equal what `pydicom.Dataset.save_as` writes for the same header.
"""

from __future__ import annotations

import struct
from functools import cache

from pydicom import __version__ as PYDICOM_VERSION
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

PREAMBLE = b"\x00" * 128 + b"DICM"
LONG_LENGTH_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
IMPLEMENTATION_VERSION = f"PYDICOM {PYDICOM_VERSION}"  # what pydicom stamps in (0002,0013)


@cache
def _header(keyword: str) -> tuple[int, str, bytes, bytes]:
    """(tag, VR, packed tag + VR, padding byte) of a keyword (PS3.6 dictionary)."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword}")
    vr = dictionary_VR(tag)
    pad = b"\x00" if vr in ("UI", "OB") else b" "
    return tag, vr, struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii"), pad


def _element(keyword: str, value: str | int | bytes) -> tuple[int, bytes]:
    tag, vr, head, pad = _header(keyword)
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if len(data) % 2:
        data += pad
    if vr in LONG_LENGTH_VRS:
        return tag, head + struct.pack("<2xI", len(data)) + data
    return tag, head + struct.pack("<H", len(data)) + data


def _encode(elements: dict[str, str | int | bytes]) -> bytes:
    return b"".join(data for _, data in sorted(_element(k, v) for k, v in elements.items()))


def part10(dataset: dict[str, str | int | bytes]) -> bytes:
    """A DICOM file (preamble, file meta information, data set) for a flat header of keyword → value.

    Text values are written UTF-8 (the data set should say `SpecificCharacterSet: ISO_IR 192`), integers as
    text (IS); binary VRs (US, UL, ...) are not supported. The transfer syntax is Explicit VR Little Endian;
    SOPClassUID and SOPInstanceUID are required."""
    meta = _encode({
        "FileMetaInformationVersion": b"\x00\x01",
        "MediaStorageSOPClassUID": dataset["SOPClassUID"],
        "MediaStorageSOPInstanceUID": dataset["SOPInstanceUID"],
        "TransferSyntaxUID": ExplicitVRLittleEndian,
        "ImplementationClassUID": PYDICOM_IMPLEMENTATION_UID,
        "ImplementationVersionName": IMPLEMENTATION_VERSION,
    })  # fmt: skip
    group_length = _header("FileMetaInformationGroupLength")[2] + struct.pack("<HI", 4, len(meta))  # UL
    return PREAMBLE + group_length + meta + _encode(dataset)
