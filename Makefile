# Customer 360 Sync. Every target creates .venv and installs the pinned requirements first.
# C360_WAREHOUSE_URL unset => an embedded PostgreSQL under .data/pg (no server needed).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test up down docs dashboards lint bench quality env clean

$(STAMP): requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

demo: $(STAMP)  ## run the whole pipeline once on the sandbox and print a summary
	$(PY) -m include.cli demo

test: $(STAMP)  ## lint, then the whole test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m include.cli test -- -q

up: $(STAMP)  ## Airflow standalone (UI on http://127.0.0.1:8080) with the sandbox running
	$(PY) -m include.cli up

down: $(STAMP)  ## stop Airflow, the sandbox and the embedded PostgreSQL
	$(PY) -m include.cli down

docs: $(STAMP)  ## build the dbt docs (data dictionary) and serve them on :8081
	$(PY) -m include.cli docs

dashboards: $(STAMP)  ## build the HTML dashboards from the warehouse and serve them on :8083; DASHBOARD_ARGS="--schema marts"
	$(PY) -m include.cli dashboards --open $(DASHBOARD_ARGS)

bench: $(STAMP)  ## benchmarks (figures, not tests); BENCH_ARGS="--records 200000" for a quick run
	$(PY) -m include.cli bench $(BENCH_ARGS)

quality: $(STAMP)  ## score identity resolution against the sandbox ground truth (after make demo)
	$(PY) -m include.cli quality $(QUALITY_ARGS)

env: $(STAMP)  ## eval "$$(make -s env)" to get the same environment in your shell
	@$(PY) -m include.cli env

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:  ## remove generated data and the embedded database (keeps .venv)
	-$(PY) -m include.cli down
	rm -rf .data dbt_project/target dbt_project/logs
