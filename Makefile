# Quire: the two commands of the README, and a few helpers.
#   make run    - venv, services, migrate, web + worker, transcribe the bundled real page, serve
#   make test   - venv, services (PostgreSQL too), the whole test suite, stop the services
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt/updated only when a requirements file changes (stamp keyed on their hash).
REQ_HASH := $(shell cat requirements/*.txt | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)

.PHONY: help venv run test services-up services-down services-env lint-imports clean-var

help:
	@echo "make run   - start a local stack, transcribe a real handwritten page, keep serving"
	@echo "make test  - run the whole test suite against real Redis, S3, PostgreSQL and a worker"
	@echo "make venv | services-up | services-env | services-down | lint-imports"

venv: $(STAMP)

$(STAMP): requirements/base.txt requirements/worker.txt requirements/dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements/dev.txt into $(VENV)"
	@$(PY) -m pip install -q -r requirements/dev.txt 2>&1 | { grep -v "is ignored" || true; }
	@rm -f $(VENV)/.installed-*
	@touch $@

run: venv
	$(PY) scripts/run_stack.py $(RUN_ARGS)

test: venv
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

services-up: venv
	$(PY) scripts/services.py up

services-env:
	@$(PY) scripts/services.py env

services-down:
	$(PY) scripts/services.py down

lint-imports: venv
	PYTHONPATH=platform:. $(VENV)/bin/lint-imports --no-cache

clean-var: services-down
	rm -rf var/run var/services var/test-services
