# catalog-sync: every target sets up what it needs (a virtualenv from the lock file).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAM_VENV := .sam-venv
SAM    := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0
PYTEST_ARGS ?=

.PHONY: help venv test test-fast lint format demo bench soak build validate lock clean

help:
	@echo "make demo   - run a real sync end to end on the embedded local stack"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff + mypy"
	@echo "make build  - sam validate --lint + sam build (aws-sam-cli in its own venv)"
	@echo "make bench  - benchmarks at 10k and 100k products"
	@echo "make soak   - the stateful property test, long"

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
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
	$(BIN)/python -m catalogctl.demo

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

soak: $(STAMP)
	CATALOG_SYNC_SOAK=1 $(BIN)/python -m pytest -q -p no:xdist tests/e2e/test_property_sync.py

$(SAM): 
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)

validate: $(SAM)
	$(SAM) validate --lint --region us-east-1

build: validate
	$(SAM) build --region us-east-1

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in
	.lock-venv/bin/pip freeze > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .demo .bench
