# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# pip's own progress shows: the first install downloads a few hundred MB (embedded servers, dev tools).
$(BIN)/plane-workers: pyproject.toml
	@echo "== creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip"
	$(BIN)/pip install --upgrade pip
	@echo "== installing plane-workers and its dev dependencies (takes a few minutes the first time)"
	$(BIN)/pip install -e '.[dev]'
	touch $@

.PHONY: demo test lint bench bench-quick
demo: $(BIN)/plane-workers
	@echo "== starting the embedded stack and the demo"
	$(BIN)/plane-workers demo

# tests/conformance runs apart: its cases mostly wait (restarts, group joins, outages), so four
# go side by side, each xdist worker with its own PostgreSQL and broker (an outage stays in it).
test: $(BIN)/plane-workers
	$(BIN)/ruff check .
	$(BIN)/plane-workers export-helm --check
	$(BIN)/pytest -p no:cacheprovider --ignore=tests/conformance
	$(BIN)/pytest -p no:cacheprovider -n 4 tests/conformance

# Every benchmark under tests/benchmarks, one JSON report (README "Benchmarks"); quick: small sizes.
bench: $(BIN)/plane-workers
	$(BIN)/python -m tests.benchmarks.run_all --out bench-report.json

bench-quick: $(BIN)/plane-workers
	$(BIN)/python -m tests.benchmarks.run_all --quick --out bench-report.json
