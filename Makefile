# The two commands of the README: `make demo` and `make test`. Both set up what is missing first.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo demo-logs test bench lint

setup:
	@scripts/bootstrap.sh

# A real Airflow 3 stack on 127.0.0.1: the example DAGs fail, faultcat diagnoses them. DEMO_ARGS=--keep
# leaves the stack running for the UI.
demo: setup
	@$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

# The diagnosis engine alone, on the example log files under examples/.
demo-logs: setup
	@scripts/demo_logs.sh

test: setup
	@$(VENV)/bin/ruff check --quiet airflow_faultcat tests bench dags scripts plugins
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	@$(VENV)/bin/python bench/diagnose.py
	@$(VENV)/bin/python bench/accuracy.py
	@$(VENV)/bin/python bench/fit_fallback.py --check
	@$(VENV)/bin/python bench/calibrate.py --check
	@$(VENV)/bin/python bench/scrub.py
	@$(VENV)/bin/python bench/hostile.py
	@$(VENV)/bin/python bench/recovery.py
	@$(VENV)/bin/python bench/recovery_overhead.py
	@$(VENV)/bin/python bench/shadow_scan.py
	@$(VENV)/bin/python bench/fingerprint.py
	@$(VENV)/bin/python bench/canary_cycle.py

lint: setup
	@$(VENV)/bin/ruff check airflow_faultcat tests bench dags scripts plugins
