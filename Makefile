# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DEBUG ?= 1

# The suite's own PostgreSQL database and Redis database. `make test` installs and starts what they
# need (scripts/services); the suite reads only these, never DATABASE_URL / REDIS_URL (make run's).
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test chaos lint format migrations-check seed install clean bench registry

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --no-input
	@$(PY) manage.py seed_demo > var/.demo-token-out
	@echo
	@echo "  Site:  http://127.0.0.1:8000/"
	@echo "  Demo API token (user 'demo'): $$(cat var/.demo-token-out)"
	@echo "  Try:   curl -s -X POST http://127.0.0.1:8000/v1/predictions -H \"Authorization: Bearer $$(cat var/.demo-token-out)\" \\"
	@echo "           -H 'Content-Type: application/json' -H 'Prefer: wait' -d '{\"version\": \"demo/hello\", \"input\": {\"text\": \"you\"}}'"
	@echo
	@rm -f var/.demo-token-out
	$(PY) manage.py runstack

seed: $(STAMP)
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo

# Packages and services first: the venv needs python3.11-venv.
test:
	scripts/services
	@$(MAKE) -s install
	$(PY) -m pytest $(PYTEST_ARGS)

# Kills workers, agents, a Cog server and (its own) Redis under load; prints the figures.
# CHAOS_PREDICTIONS (default 1000) and CHAOS_RATE (per second, default 60) size it.
chaos:
	scripts/services
	@$(MAKE) -s install
	$(PY) -m pytest -m chaos -s tests/chaos $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy marketplace workers

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: $(STAMP)
	$(PY) manage.py makemigrations --check --dry-run

# The image registry for development (docker-registry; token auth against `make run`'s web server).
registry: $(STAMP)
	$(PY) manage.py registry

bench: $(STAMP)
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) var
