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
	@echo "== installing torch for the embeddings extra: 2.13.0 pinned, so pip takes the CPU build"
	@echo "   where one is on disk instead of choosing a multi-GB CUDA build for the open range"
	$(BIN)/pip install 'torch==2.13.0'
	@echo "== installing plane-workers and its dev dependencies (takes a few minutes the first time)"
	$(BIN)/pip install -e '.[dev]'
	touch $@

.PHONY: demo test lint bench bench-quick lock
demo: $(BIN)/plane-workers
	@echo "== starting the embedded stack and the demo"
	$(BIN)/plane-workers demo

# tests/unit and tests/chart are CPU-bound and share no state (helm renders, promtool, parsing):
# one xdist worker per core. The rest runs in two more pytest runs, each xdist worker with its own
# embedded PostgreSQL, broker and S3 (an outage or restart stays in it). Integration, reliability
# and compat mostly wait on servers and subprocesses: three workers, a module per worker (module
# fixtures stay shared). tests/conformance runs real consumer processes and is CPU-bound on 2
# cores: four workers (six overcommitted the machine, and slow consumers missed their settle time).
test: $(BIN)/plane-workers
	$(BIN)/ruff check .
	$(BIN)/plane-workers export-helm --check
	$(BIN)/pytest -p no:cacheprovider -n 2 tests/unit tests/chart
	$(BIN)/pytest -p no:cacheprovider -n 3 --dist loadfile --durations=30 --ignore=tests/conformance --ignore=tests/unit --ignore=tests/chart
	$(BIN)/pytest -p no:cacheprovider -n 4 --durations=20 tests/conformance

# Every benchmark under tests/benchmarks, one JSON report (README "Benchmarks"); quick: small sizes.
bench: $(BIN)/plane-workers
	$(BIN)/python -m tests.benchmarks.run_all --out bench-report.json

bench-quick: $(BIN)/plane-workers
	$(BIN)/python -m tests.benchmarks.run_all --quick --out bench-report.json

# requirements.lock and requirements-gpu.lock: every dependency of the image (Dockerfile VARIANT cpu
# and gpu), pinned with its hashes, for the image's Python on Linux. Rerun after changing the
# dependencies in pyproject.toml (existing pins are kept where they still fit; UPGRADE=1 refreshes
# them all). The gpu lock is constrained by the cpu one, so both images share their common pins.
LOCK_PYTHON := 3.12
UV_COMPILE = $(BIN)/uv pip compile --quiet --python-version $(LOCK_PYTHON) --python-platform linux \
	--generate-hashes --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade)
lock: $(BIN)/plane-workers
	$(BIN)/pip install --quiet 'uv>=0.5'
	$(UV_COMPILE) pyproject.toml -o requirements.lock
	$(UV_COMPILE) pyproject.toml requirements-gpu.in --extra embeddings -c requirements.lock \
		-o requirements-gpu.lock
