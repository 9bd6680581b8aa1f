# The two commands of the quick start: `make demo`, then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
# This machine's pip configuration names local mirrors that may be absent; drop those warnings only.
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: demo test test-quick lint bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip $(QUIET_PIP)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e . $(QUIET_PIP)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]' $(QUIET_PIP)
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/mieruka explain samples --out $(OUT) --overwrite

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

test-quick: $(VENV)/.installed-dev  # no model training, no end-to-end runs of the command
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) out .pytest_cache
