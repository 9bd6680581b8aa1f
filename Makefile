# The two commands of the quick start: `make demo`, then `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
# This machine's pip configuration names local mirrors that may be absent; drop those warnings only.
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: demo test test-quick lint bench bench-quick clean browser

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

test: $(VENV)/.installed-dev browser
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

test-quick: $(VENV)/.installed-dev  # no model training, no end-to-end runs of the command
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) out .pytest_cache

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot be reached here):
# installed when missing where we can (root with apt-get, as in CI); otherwise they are skipped, saying so.
browser:
	@if [ -n "$$MIERUKA_CHROMIUM" ] || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; }; } || \
		echo "SKIPPING the browser tests: apt-get could not install chromium"; \
	else echo "SKIPPING the browser tests: no chromium (apt-get install chromium, or set MIERUKA_CHROMIUM)"; fi
