# Hutong: two commands on a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test serve bench lint clean-data help chromium

help:
	@echo "make demo   - set up .venv, generate the synthetic county, run the whole platform on DuckDB"
	@echo "make test   - the whole test suite (DuckDB and the PostgreSQL server at 127.0.0.1:5432)"
	@echo "make serve  - Dagster UI on http://127.0.0.1:3000"
	@echo "make bench  - benchmarks under bench/ (print figures)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hutong demo

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

serve: $(STAMP)
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/data/dagster} ; mkdir -p $$DAGSTER_HOME ; \
	[ -s $$DAGSTER_HOME/dagster.yaml ] || printf 'concurrency:\n  runs:\n    max_concurrent_runs: 1\n' > $$DAGSTER_HOME/dagster.yaml ; \
	DAGSTER_HOME=$$DAGSTER_HOME $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-data:
	rm -rf data

# Headless Chromium renders the quality reports in tests (screenshots); installed from apt when missing, with a
# CJK font (the reports are in Chinese: without one every 汉字 renders as an empty box).
chromium:
	@command -v chromium >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q . || \
	  (apt-get update && apt-get install -y chromium fonts-noto-cjk)
