"""PACS connector: DICOM headers and imaging reports land per institution; unreadable files are quarantined."""

from __future__ import annotations

import csv
from collections import Counter

from pydicom import dcmread

import synthetic
from connectors.pacs import read_dicom
from connectors.registry import ingest
from tests.conftest import write_config
from warehouse import Warehouse, ensure_core


def _truth(config) -> dict[tuple[str, str], set[str]]:
    keys: dict[tuple[str, str], set[str]] = {}
    with (config.data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["source_system"] == "PACS":
                keys.setdefault((r["org_code"], r["entity"]), set()).add(r["local_key"])
    return keys


def test_dicom_and_reports_land_and_match_truth(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=("RMYY", "ZYY"))
    synthetic.generate(config, size="tiny", out_dir=config.data_dir, seed=7, kinds=("pacs",))
    truth = _truth(config)
    rmyy = config.institution("RMYY")
    folder = config.data_dir / "sources" / rmyy.org_code / "pacs"
    (folder / "dicom" / "20261003" / "broken.dcm").write_bytes(b"DICM?" + b"\x00" * 40)
    (folder / "reports" / "20261003" / "broken.json").write_bytes('{"accession_number": "X1", 检查所见'.encode())
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        runs = ingest(wh, config, kinds=["pacs"])
        assert not [r.error for r in runs if r.error]
        for inst in config.institutions:
            studies = {k for (k,) in wh.query("SELECT accession_number FROM raw.pacs_study WHERE _org_code = ?",
                                              [inst.org_code])}  # fmt: skip
            reports = {k for (k,) in wh.query("SELECT _source_key FROM raw.pacs_report WHERE _org_code = ?",
                                              [inst.org_code])}  # fmt: skip
            assert studies == truth[(inst.org_code, "imaging_study")]
            assert reports == truth[(inst.org_code, "imaging_report")]
        bad = wh.query("SELECT origin, error_code, message, original FROM ops.quarantine ORDER BY origin")
        assert [(o, c) for o, c, _, _ in bad] == [
            ("dicom/20261003/broken.dcm", "dicom_unreadable"),
            ("reports/20261003/broken.json", "report_unreadable"),
        ]
        assert all(m for _, _, m, _ in bad) and bytes(bad[0][3]).startswith(b"DICM?")
        # one study read back against pydicom: ids, modality, date, the HIS encounter key
        path = sorted(folder.rglob("RMYY*.dcm"))[0]
        dataset = dcmread(path)
        row = wh.query_dicts("SELECT * FROM raw.pacs_study WHERE sop_instance_uid = ?", [dataset.SOPInstanceUID])[0]
        assert (row["patient_id"], row["modality"], row["study_date"], row["accession_number"]) == (
            dataset.PatientID or None,
            dataset.Modality,
            dataset.StudyDate,
            dataset.AccessionNumber,
        )
        assert row["admission_id"] == dataset.AdmissionID and row["_origin"] == path.relative_to(folder).as_posix()
        assert row["patient_name"] == str(dataset.PatientName)
        modalities = Counter(m for (m,) in wh.query("SELECT modality FROM raw.pacs_report"))
        assert set(modalities) <= {"CR", "DX", "CT", "MR", "US", "ECG", "ES", "XA", "MG", "RF"} and modalities
        missing_id = wh.scalar("SELECT count(*) FROM raw.pacs_study WHERE patient_id IS NULL")
        defects = [d for d in csv.DictReader((config.data_dir / "truth" / "defects.csv").open(encoding="utf-8"))
                   if d["source_kind"] == "pacs" and d["defect_type"] == "missing_required"]  # fmt: skip
        assert missing_id == len(defects)  # content defects land (quality rules find them), never quarantined
        again = ingest(wh, config, kinds=["pacs"])
        assert sum(r.rows_loaded for r in again) == 0 and sum(r.files_skipped for r in again) > 0


def test_pixel_data_is_never_read(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPInstanceUID, ds.PatientID, ds.Modality = meta.MediaStorageSOPInstanceUID, "P1", "CT"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 512, 512, 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
    ds.PixelData = b"\x00\x01" * (512 * 512)
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    truncated = data[: len(data) - 400_000]  # pixel data cut short: the header is still fine
    assert read_dicom(truncated)["patient_id"] == "P1"
    assert read_dicom(data)["modality"] == "CT"
