# Rollgate: `make run` to try it, `make test` to check everything. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/rollgate

.PHONY: run test lint typecheck checks pytest smoke bench fuzz clean

$(VENV)/.runtime-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt $(VENV)/.runtime-installed
	$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: install, migrate the embedded SQLite database, load demo data, start web + Celery worker with beat.
run: $(VENV)/.runtime-installed
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) VENV=$(VENV) scripts/run-local.sh

## test: lint, types, Django checks, migrations check, then the whole suite on PostgreSQL.
test: $(VENV)/.dev-installed
	@DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) scripts/wait_for_postgres.py
	scripts/ensure_chromium.sh
	$(MAKE) --no-print-directory lint typecheck checks pytest

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy .

checks: $(VENV)/.dev-installed
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py check
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	SECRET_KEY=check-deploy-$$RANDOM$$RANDOM-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ \
	  ALLOWED_HOSTS=rollgate.example.com DJANGO_SETTINGS_MODULE=config.settings.production \
	  $(PY) manage.py check --deploy --fail-level WARNING

pytest: $(VENV)/.dev-installed
	# Two processes, one per core (each with its own test database); PYTEST_WORKERS=0 runs in one. worksteal: an idle
	# process takes tests queued for the other, so the slow subprocess and browser tests do not end the run on one core.
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(VENV)/bin/pytest -n $${PYTEST_WORKERS:-2} --dist worksteal $(PYTEST_ARGS)

## fuzz: schemathesis against the live schema as every role, with many examples per operation (the suite runs 3).
fuzz: $(VENV)/.dev-installed
	@DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) scripts/wait_for_postgres.py
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} ROLLGATE_FUZZ_EXAMPLES=$${ROLLGATE_FUZZ_EXAMPLES:-60} \
	  $(VENV)/bin/pytest -p no:cacheprovider tests/test_api_fuzz.py

## smoke: the embedded default (SQLite + filesystem broker) still migrates, seeds and serves.
smoke: $(VENV)/.runtime-installed
	env -u DATABASE_URL -u CELERY_BROKER_URL $(PY) scripts/smoke_embedded.py

## bench: performance figures next to a same-run PostgreSQL baseline, and the verdict figures (A/A false alarms,
## power, breach → incident latency with a real worker on Redis). BENCH_SCALE=0.1 make bench for a quick run.
bench: $(VENV)/.dev-installed
	@DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(PY) scripts/wait_for_postgres.py
	@for bench in benchmarks/bench_*.py; do \
	  DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} DJANGO_SETTINGS_MODULE=config.settings.test $(PY) $$bench || exit 1; \
	done

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
