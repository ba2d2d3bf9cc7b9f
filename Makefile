# SkyWatch Portal. `make run` (embedded, no servers) and `make test` (real services) are the two entry points.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# The port `make run` serves on: `make run PORT=8001` beside another portal.
PORT ?= 8000

.PHONY: run test lint format install install-dev services services-stop worker beat bench soak fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt observatory/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt -e ./observatory
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUN_STAMP)
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

## The portal on http://127.0.0.1:$(PORT) in the embedded default: SQLite, in-process tasks, database search.
run: install
	PORT=$(PORT) scripts/run.sh

## Every test against real PostgreSQL, Redis, Elasticsearch and Chromium (installed and started if missing).
test: install-dev
	scripts/test.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Install what is missing and start PostgreSQL, Redis and Elasticsearch; prints `export` lines to eval.
services:
	@scripts/services.sh start

services-stop:
	@scripts/services.sh stop

## A Celery worker and the beat scheduler against the real services (run `make services` first): the URLs
## of `scripts/services.sh env` for those the environment does not set. Beat keeps its schedule in .cache/.
worker: install
	scripts/with-services.sh $(BIN)/celery -A skywatch_portal worker -l info

beat: install
	mkdir -p .cache
	scripts/with-services.sh $(BIN)/celery -A skywatch_portal beat -l info --schedule .cache/celerybeat-schedule

## Every benchmark against the real services; writes bench/results/latest.json and bench/README.md.
bench: install-dev
	scripts/bench.sh

## The long soak (about 6 minutes): 20 services, every fault in turn, then the reconciliation of every store.
soak: install
	scripts/soak.sh

## schemathesis against /api/schema/: 1,000 cases per operation (about 2 minutes).
fuzz: install-dev
	scripts/fuzz.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles test-artifacts
