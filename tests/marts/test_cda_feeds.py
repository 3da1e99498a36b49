"""Every required WS/T 500 / WS/T 483 document type has a feed that generates it from the warehouse, on both
warehouses: each feed delivers documents, every delivered document passes its template check again on the
receiving side, held-back records carry their reason, and phones never leave in clear."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from hutong import stages
from marts.cda import template
from marts.cda.check import check
from marts.delivery import run_feed
from marts.feed_config import Retry, Target, load_feeds
from tests.conftest import write_config
from tests.marts.conftest import SHORTS
from warehouse import Warehouse

PERIOD = "2026-11-01"
REQUIRED = {  # document type code → 标准 part (issue 8)
    "C0001": "病历概要", "C0002": "门(急)诊病历", "C0007": "检验记录", "C0006": "检查记录", "C0032": "住院病案首页",
    "C0034": "入院记录", "C0053": "出院小结", "HR0001": "个人基本信息", "HR0012": "高血压患者随访服务",
    "HR0013": "2型糖尿病患者随访服务", "HR0009": "预防接种报告",
}  # fmt: skip
PHONE = re.compile(r"1[3-9][0-9]{9}")


def _land_vaccinations(county) -> str:
    """The tiny county has no child due a vaccine in its window: drop one immunisation export (the front-end file
    contract of connectors/public_health_contract.yaml) for the township centre and ingest it the normal way."""
    config = write_config(county.data_dir.parent, county.url, shorts=("QLWSY",), synthetic_size=None,
                          kinds=("public_health",))  # fmt: skip
    org = config.institutions[0].org_code
    with Warehouse(county.url) as wh:
        people = wh.query_dicts(
            "SELECT record_no, id_no, name, birth_date, record_org FROM raw.ph_health_record WHERE _org_code = ? "
            "ORDER BY birth_date DESC, record_no LIMIT 2",
            [org],
        )
    lines = ["接种记录编号,档案编号,身份证号,儿童姓名,出生日期,疫苗名称,剂次,接种日期,疫苗批号,接种单位"]
    lines += [
        f"JZ20261020{n:04d},{p['record_no']},{p['id_no']},{p['name']},{p['birth_date']},麻腮风疫苗,{n},2026-10-20,"
        f"202610{n:02d}A,{p['record_org']}"
        for n, p in enumerate(people, 1)
    ]
    folder = county.data_dir / "sources" / org / "public_health"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "预防接种_20261020.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    runs = stages.ingest(config, orgs=[org], kinds=["public_health"])
    assert runs[0].rows_loaded == len(people) == 2
    return org


def test_every_required_document_type_is_generated_and_passes_its_template(county):
    assert len(SHORTS) == len(county.orgs)
    _land_vaccinations(county)
    feeds = [f for f in load_feeds() if f.format == "cda"]
    by_type = {template(str(f.options["template"])).code: f for f in feeds}
    assert set(by_type) >= set(REQUIRED)  # one feed per required type
    box = county.data_dir / "outbox"
    with Warehouse(county.url) as wh:
        for f in feeds:
            for org in county.orgs:
                run_feed(wh, f, Target("box", str(box), retry=Retry(attempts=1)), org, PERIOD, county.data_dir)
        deliveries = wh.query_dicts("SELECT feed, file_name, record_count, status FROM feeds.delivery")
        exclusions = wh.query_dicts("SELECT feed, record_key, reason_code, reason FROM feeds.exclusion")
        phones = {r[0] for r in wh.query("SELECT phone FROM cdr.cdr__patient WHERE phone IS NOT NULL")}
    assert phones and {d["status"] for d in deliveries} == {"delivered"}
    documents: dict[str, int] = {}
    for d in deliveries:
        spec = template(str(by_type_name(feeds, d["feed"]).options["template"]))
        with zipfile.ZipFile(Path(d["file_name"])) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            assert len(manifest["documents"]) == d["record_count"]
            for meta in manifest["documents"]:
                xml = archive.read(meta["file"]).decode("utf-8")
                assert check(spec, xml) == [], (d["feed"], meta["file"])  # the receiver's check agrees
                assert meta["type_code"] == spec.code and meta["author_organization"] in county.orgs
                assert not set(PHONE.findall(xml)) & phones  # phones are masked or omitted, never in clear
                documents[spec.code] = documents.get(spec.code, 0) + 1
    assert set(documents) >= set(REQUIRED), sorted(set(REQUIRED) - set(documents))
    assert all(x["reason"] and x["reason_code"] for x in exclusions)
    template_failures = [x for x in exclusions if x["reason_code"] == "cda_template"]
    assert all("template check" in x["reason"] for x in template_failures)


def by_type_name(feeds, name: str):
    return next(f for f in feeds if f.name == name)
