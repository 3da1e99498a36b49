"""CDA shared documents: one document per record, rendered from its WS/T 500 / WS/T 483 template and checked
against it; a package is a zip submission set (documents + manifest.json with the registry metadata of 001 R15:
document id, type, author organization, patient, time, checksum)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from marts.cda import template
from marts.cda.check import check
from marts.cda.render import render, ts
from marts.feed_config import Feed
from marts.formats import BuildError, Record

ZIP_TIME = (2000, 1, 1, 0, 0, 0)  # fixed: the same documents always make the same bytes


class CdaFormat:
    extension = "zip"
    content_type = "application/zip"
    supports_delete = False  # shared documents are superseded by new versions, never deleted

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.spec = template(str(feed.options["template"]))

    def build(self, record: Record) -> dict[str, Any]:
        body = record.body or json.dumps(
            [record.row, record.components], sort_keys=True, default=str, ensure_ascii=False
        )
        set_id = f"{self.spec.code}-{hashlib.sha1(record.key.encode()).hexdigest()[:24]}"
        doc_id = f"{set_id}-{hashlib.sha1(body.encode()).hexdigest()[:8]}"
        xml = render(self.spec, record.row, record.components, doc_id, set_id)
        errors = check(self.spec, xml)
        if errors:
            raise BuildError("cda_template", f"{self.spec.name} template check: " + "; ".join(errors[:4]))
        data = xml.encode("utf-8")
        return {
            "file": f"{doc_id}.xml",
            "xml": data,
            "meta": {
                "document_id": doc_id,
                "set_id": set_id,
                "version": 1,
                "template_id": self.spec.template_id,
                "type_code": self.spec.code,
                "title": self.spec.title,
                "standard": self.spec.standard,
                "record_key": record.key,
                "patient": record.row.get("empi_id") or record.row.get(self.spec.patient.get("id_card", "")),
                "author_organization": record.org_code,
                "effective_time": ts(record.row.get(self.spec.effective_time)),
                "sha256": hashlib.sha256(data).hexdigest(),
                "file": f"{doc_id}.xml",
            },
        }

    def package(self, items: list[dict[str, Any]]) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            manifest = {"feed": self.feed.name, "standard": self.spec.standard, "documents": [i["meta"] for i in items]}
            archive.writestr(
                zipfile.ZipInfo("manifest.json", ZIP_TIME), json.dumps(manifest, ensure_ascii=False, indent=1)
            )
            for item in items:
                info = zipfile.ZipInfo(item["file"], ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, item["xml"])
        return out.getvalue()
