# The single entry point: `make run` (the main job), `make test` (all tests),
# `make bench`, `make lint`. Each installs what it needs: a local virtualenv
# with the Python packages, and the Rust extension built in release mode.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed
HSM_DIR := .hsm
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test bench lint build venv hsm pg clean

# A wallet's life over HTTP: the service and the integrator's receiver as real servers on
# 127.0.0.1 (their data in a temporary directory), the SDK against them.
run: build
	$(BIN)/portal-core demo --http

test: build hsm pg
	cargo test --release -p portal-crypto
	$(BIN)/python -m pytest tests

# The last line: the custodian's HTTP service under load beside the same flows in-process,
# about 6 minutes (benches/service_load.py; numbers and analysis in benches/RESULTS-service.md).
bench: build hsm
	mkdir -p bench-results
	$(BIN)/python -m pytest benches --benchmark-only --benchmark-json=bench-results/bench.json -q
	$(BIN)/python benches/report.py bench-results/bench.json --plot bench-results/bench.png
	$(BIN)/python benches/service_load.py --json bench-results/service.json

# A SoftHSM2 token in $(HSM_DIR) (installs softhsm2 and opensc first when run as root).
# The tests and benchmarks make their own throwaway tokens with the same script.
hsm:
	hsm/setup.sh $(HSM_DIR)

# The PostgreSQL server programs (installs postgresql first when run as root); the tests
# start a throwaway cluster with them. Without them (status 3) the PostgreSQL tests skip,
# or fail with CI=true.
pg:
	pg/setup.sh >/dev/null || [ $$? -eq 3 ]

# mypy takes its settings from pyproject.toml ([tool.mypy]); stubtest imports the built core
# to compare the stubs with it, hence `build`.
lint: venv build
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest portal_core._rust --allowlist tests/stubtest-allowlist.txt

build: venv
	$(BIN)/maturin develop --release --quiet

venv: $(DEPS)

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { \
	  echo "python3 -m venv failed: on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"; \
	  exit 1; }

$(DEPS): requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

clean:
	rm -rf $(VENV) target bench-results .pytest_cache .hypothesis .benchmarks
	@echo "kept $(HSM_DIR)/ (the HSM token and its keys): remove it yourself if you mean to"
