# anomaly_pipeline — every target installs what it needs first (fresh machine: just run it).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ANOMALY_PIPELINE_HOME ?= $(CURDIR)/.anomaly_pipeline
export DAGSTER_HOME ?= $(ANOMALY_PIPELINE_HOME)/dagster
DBT_MANIFEST := dbt_features/target/manifest.json
# The dbt profile reads the DuckDB path from this variable (DataHome.warehouse).
WAREHOUSE := $(ANOMALY_PIPELINE_HOME)/warehouse.duckdb

.PHONY: install demo onboard dev docs lint test test-fast bench-features bench-train bench-sensors \
        bench-cold-start bench-fraud-log bench-day bench-backfill bench-range-start bench-quality \
        mlflow-ui clean

# torch==2.13.0 first: it takes the local CPU build; a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,lint,spark]'
	touch $(STAMP)

$(DBT_MANIFEST): $(STAMP) $(shell find dbt_features -name '*.sql' -o -name '*.yml' | grep -v target/)
	ANOMALY_PIPELINE_WAREHOUSE=$(WAREHOUSE) $(BIN)/dbt parse --project-dir dbt_features --profiles-dir resources/dbt --quiet
	touch $(DBT_MANIFEST)

$(DAGSTER_HOME)/dagster.yaml: resources/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp resources/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

install: $(STAMP) $(DBT_MANIFEST) $(DAGSTER_HOME)/dagster.yaml

## demo: simulate 14 days, materialise the whole graph, print the summary (demo pseudonym key).
demo: install
	ANOMALY_PIPELINE_DEMO=1 $(BIN)/python -m anomaly_pipeline.demo

## onboard: a history file → day files → ingest, training, scoring runs → summary
##   (pseudonyms: $ANOMALY_PIPELINE_PSEUDONYM_KEY when set, else the demo key, as `make dev`).
##   make onboard FILE=export.csv FORMAT=fraud_log ARGS="--time-format '%m/%d/%Y %H:%M'"
onboard: install
	@test -n "$(FILE)" -a -n "$(FORMAT)" || { echo 'usage: make onboard FILE=path FORMAT=canonical|taobao|fraud_log|mapped [ARGS="..."]'; exit 2; }
	ANOMALY_PIPELINE_DEMO=$${ANOMALY_PIPELINE_DEMO:-1} $(BIN)/anomaly-pipeline onboard "$(FILE)" --format "$(FORMAT)" $(ARGS)

## dev: the Dagster UI on http://127.0.0.1:3000 over the same data directory (the dbt project is
## re-parsed on load, with the venv's dbt, so model edits show up).
dev: install
	PATH=$(CURDIR)/$(BIN):$$PATH ANOMALY_PIPELINE_WAREHOUSE=$(WAREHOUSE) \
	  ANOMALY_PIPELINE_DEMO=$${ANOMALY_PIPELINE_DEMO:-1} $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

## lint: ruff's rules and formatting over the repo and mypy over the package (config in pyproject.toml).
lint: install
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy

## docs: dbt's documentation of every model and column (the features' from the catalogue) and the
## lineage, on http://127.0.0.1:8080 (the compile vars only fill the SQL shown; nothing runs).
docs: install
	mkdir -p $(ANOMALY_PIPELINE_HOME)
	export ANOMALY_PIPELINE_DEMO=$${ANOMALY_PIPELINE_DEMO:-1} \
	  ANOMALY_PIPELINE_WAREHOUSE=$(WAREHOUSE) && \
	$(BIN)/dbt docs generate --project-dir dbt_features --profiles-dir resources/dbt --quiet \
	  --vars '{start_day: 2024-01-01, end_day: 2024-01-01}' && \
	$(BIN)/dbt docs serve --project-dir dbt_features --profiles-dir resources/dbt \
	  --host 127.0.0.1 --port 8080 --no-browser

## test: the whole suite (slow end-to-end tests included, as in CI).
test: install
	$(BIN)/python -m pytest

## test-fast: skip the tests marked slow.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench-features: install
	ANOMALY_PIPELINE_DEMO=1 $(BIN)/python benchmarks/bench_features.py

bench-train: install
	$(BIN)/python benchmarks/bench_train.py

bench-sensors: install
	$(BIN)/python benchmarks/bench_sensors.py

bench-cold-start: install
	$(BIN)/python benchmarks/bench_cold_start.py

bench-fraud-log: install
	$(BIN)/python benchmarks/bench_fraud_log.py

## bench-day: daily_job over one 10 M-event day end to end (CLI process), then its re-run.
bench-day: install
	$(BIN)/python benchmarks/bench_day.py

## bench-backfill: 30 days × 200,000 events as single-run backfills, then 5 days re-run.
bench-backfill: install
	$(BIN)/python benchmarks/bench_backfill.py

## bench-range-start: a 365-day range to its run's start: from the CLI, against Dagster's SQLite event
## log, and from the UI (the Materialize dialog's backfill mutation through `dagster dev`, 3 launches).
bench-range-start: install
	$(BIN)/python benchmarks/bench_range_start.py

## bench-quality: every detector and the ensemble, with and without labels, PR-AUC per anomaly type
## (≈15 min on 2 cores; not run in CI — tests/e2e/test_bench_quality.py runs its code path).
bench-quality: install
	$(BIN)/python benchmarks/bench_quality.py

## mlflow-ui: the MLflow UI on http://127.0.0.1:5000 over the data directory's tracking store.
mlflow-ui: install
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
	  --backend-store-uri sqlite:///$(ANOMALY_PIPELINE_HOME)/mlflow.db \
	  --default-artifact-root $(ANOMALY_PIPELINE_HOME)/mlartifacts

clean:
	rm -rf $(ANOMALY_PIPELINE_HOME) dbt_features/target dbt_features/logs
