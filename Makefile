# catalog-sync: every target sets up what it needs (a virtualenv from the lock file).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAM_VENV := .sam-venv
SAM    := $(SAM_VENV)/bin/sam
SAM_STAMP = $(SAM_VENV)/.installed-$(SAM_VERSION)
SAM_VERSION := 1.170.0
SAM_REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
# validate/build are offline: no telemetry, and no AWS account needed.
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$(SAM_REGION)
PYTEST_ARGS ?=

.PHONY: help venv test test-fast lint format demo bench bench-large bench-dashboard soak build validate checkov lock clean dashboard-assets

help:
	@echo "make demo   - run a real sync end to end on the embedded local stack (TARGET=aco: to the ACO emulator)"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff + mypy"
	@echo "make build  - sam validate --lint + sam build (aws-sam-cli in its own venv)"
	@echo "make bench  - benchmarks at 10k and 100k products (make bench-large: 500k, one store view)"
	@echo "make bench-dashboard - the dashboard's page load times on a 500k-item feed"
	@echo "make checkov - checkov on template.yaml (its own venv)"
	@echo "make soak   - the stateful property test, long"

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e ".[local]"
	touch $(STAMP)

venv: $(STAMP)

# The dashboard's chart library (uPlot), from the npm registry by its lock, served by the app.
DASH := catalogctl/dashboard
$(DASH)/static/vendor/uPlot.iife.min.js: $(DASH)/package-lock.json
	cd $(DASH) && npm ci --ignore-scripts --no-audit --no-fund --silent
	mkdir -p $(DASH)/static/vendor
	cp $(DASH)/node_modules/uplot/dist/uPlot.iife.min.js $(DASH)/node_modules/uplot/dist/uPlot.min.css $(DASH)/static/vendor/

dashboard-assets: $(DASH)/static/vendor/uPlot.iife.min.js

test: $(STAMP)
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory dashboard-assets; fi
	@test -x "$${CATALOG_SYNC_CHROMIUM:-/usr/bin/chromium}" || echo "make test: no chromium: the browser tests of the dashboard are SKIPPED (apt-get install chromium)"
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/python -m devstack.demo $(if $(TARGET),--target $(TARGET))

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-large: $(STAMP)
	$(BIN)/python -m bench.run --sizes 500000 --store-views default:base --aco-products 0 $(BENCH_ARGS)

# The dashboard's page load times on a 500k-item feed (state written into the local stack).
bench-dashboard: $(STAMP)
	$(BIN)/python -m bench.dashboard $(or $(ITEMS),500000)

soak: $(STAMP)
	CATALOG_SYNC_SOAK=1 $(BIN)/python -m pytest -q -p no:xdist tests/e2e/test_property_sync.py

# aws-sam-cli pins its own boto3/pydantic: it gets a venv of its own.
$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)
	touch $(SAM_STAMP)

# checkov pins many packages: it gets a venv of its own, like aws-sam-cli. Offline
# (--skip-download); the checks the template skips are named, with reasons, in its Metadata.
CHECKOV_VENV := .checkov-venv
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP = $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

validate: $(SAM_STAMP)
	$(SAM_ENV) $(SAM) validate --lint --template template.yaml --region $(SAM_REGION)

# Builds without Docker: python3.11 must be on PATH; the layer's arm64 wheels come from the index.
build: validate
	$(SAM_ENV) $(SAM) build --template template.yaml --region $(SAM_REGION)
	test -d .aws-sam/build/CoreLayer/python/catalog_sync

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in
	.lock-venv/bin/pip freeze > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .demo .bench
