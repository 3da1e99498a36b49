"""Reference tables: ops.institution from the config, ops.population from the population file (both warehouses)."""

from __future__ import annotations

import csv
from datetime import date

import pytest

from hutong.config import DEFAULT_CONFIG, ConfigError, load_config
from hutong.reference import population_path, read_population, write_reference
from synthetic.population import generate_population, write_population_table
from tests.conftest import write_config
from warehouse import Warehouse

HEADER = ["year", "township_code", "township_name", "sex_code", "age_low", "age_high", "population"]


def _population_file(path, rows):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_reference_tables_replace_the_config_and_population(tmp_path, warehouse_url):
    pop = _population_file(tmp_path / "pop.csv", [
        [2026, "410182100", "乔楼镇", "1", 0, 4, 120], [2026, "410182100", "乔楼镇", "2", 65, 69, 80],
        [2026, "410182001", "索河街道", "2", 85, 120, 7],
    ])  # fmt: skip
    base = load_config(DEFAULT_CONFIG).county
    config = write_config(tmp_path, warehouse_url, overrides={"county": {**base, "population_file": str(pop)}})
    with Warehouse(warehouse_url) as wh:
        first = write_reference(wh, config)
        second = write_reference(wh, config)  # a re-run replaces, never appends
        institutions = {r["short"]: r for r in wh.query_dicts("SELECT * FROM ops.institution")}
        population = wh.query("SELECT township_code, sex_code, age_low, population FROM ops.population "
                              "ORDER BY township_code, age_low")  # fmt: skip
        assert wh.table_exists("raw.ph_vaccination")  # dbt sources exist before any export has landed
    assert first == second and first.population_total == 207
    assert set(institutions) == {"RMYY", "FYBJY", "QLWSY"}
    qlwsy = institutions["QLWSY"]
    assert (qlwsy["beds"], qlwsy["physicians"], qlwsy["type"], qlwsy["grade"]) == (40, 14, "乡镇卫生院", "一级甲等")
    assert qlwsy["has_public_health"] is True and institutions["RMYY"]["has_public_health"] is False
    assert qlwsy["township_code"] == "410182100"
    assert [tuple(r) for r in population] == [("410182001", "2", 85, 7), ("410182100", "1", 0, 120),
                                              ("410182100", "2", 65, 80)]  # fmt: skip


@pytest.mark.parametrize(
    "row, message",
    [([2026, "410182100", "乔楼镇", "3", 0, 4, 1], "sex_code"),
     ([2026, "410182100", "乔楼镇", "1", 0, 4, "x"], "integers"),
     ([2026, "410182100", "乔楼镇", "1", 9, 4, 1], "age_low")],
)  # fmt: skip
def test_a_bad_population_file_is_refused_with_its_line(tmp_path, row, message):
    path = _population_file(tmp_path / "pop.csv", [row])
    with pytest.raises(ConfigError, match=rf"line 2: .*{message}"):
        read_population(path)


def test_population_file_defaults_to_the_data_dir_and_a_missing_one_only_warns(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}")
    path = population_path(config)
    assert path == config.data_dir / "sources" / "statistics" / "population.csv"
    with pytest.raises(ConfigError, match="not found"):
        read_population(path)
    with Warehouse(config.warehouse_url) as wh:
        result = write_reference(wh, config)
        assert wh.count("ops.population") == 0 and wh.count("ops.institution") == 3
    assert result.population_file is None and "no population table" in result.warning


def test_synthetic_population_table_counts_every_resident(tmp_path):
    county = load_config(DEFAULT_CONFIG).county
    end = date(2026, 10, 31)
    people = generate_population(county, 500, 3, end)
    path = tmp_path / "population.csv"
    rows = write_population_table(people, end, path)
    table = read_population(path)
    assert rows == len(table) == len({p.township_code for p in people}) * 2 * 18  # every band, zeros too
    assert sum(r[6] for r in table) == 500
    old = sum(1 for p in people if (end - p.birth_date).days // 365 >= 65)
    assert sum(r[6] for r in table if r[4] >= 65) == old


def test_marts_are_downstream_of_the_reference_asset(tmp_path):
    from dagster import AssetKey

    from pipelines.definitions import build_definitions

    config = write_config(tmp_path, f"duckdb:///{tmp_path / 'wh.duckdb'}")
    graph = build_definitions(config).resolve_asset_graph()
    parents = {k.to_user_string() for k in graph.get(AssetKey(["marts", "marts__public_health_coverage"])).parent_keys}
    assert {"ops/institution", "ops/population", "health_record/hr__enrolment"} <= parents
    assert graph.get(AssetKey(["ops", "population"])).is_materializable  # written by the reference_tables asset


def test_reference_asset_materialises_the_tables(tmp_path):
    from dagster import materialize

    from pipelines.definitions import HutongConfig
    from pipelines.reference import reference_asset

    pop = _population_file(tmp_path / "pop.csv", [[2026, "410182100", "乔楼镇", "2", 65, 69, 80]])
    base = load_config(DEFAULT_CONFIG).county
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    config = write_config(tmp_path, url, overrides={"county": {**base, "population_file": str(pop)}})
    result = materialize([reference_asset()], resources={"hutong": HutongConfig(config_path=str(config.path))})
    assert result.success
    with Warehouse(url) as wh:
        assert (wh.count("ops.institution"), wh.scalar("SELECT sum(population) FROM ops.population")) == (3, 80)
