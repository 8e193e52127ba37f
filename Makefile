# The two commands of the README: `make demo` and `make test`. Both set up what is missing first.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup demo test bench lint

setup:
	@scripts/bootstrap.sh

demo: setup
	@scripts/demo.sh

test: setup
	@$(VENV)/bin/ruff check --quiet airflow_faultcat tests bench
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	@$(VENV)/bin/python bench/diagnose.py
	@$(VENV)/bin/python bench/accuracy.py

lint: setup
	@$(VENV)/bin/ruff check airflow_faultcat tests bench
