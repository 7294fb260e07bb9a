# One-command entry points. Only Python 3.11 and make are needed; everything else is installed
# into .venv from the hash-locked requirements files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock | cksum | cut -d' ' -f1)
PTH := $(VENV)/.checkout-on-path
PORT ?= 8000

.PHONY: setup run test bench lint fmt lock migrate seed clean mutate

$(STAMP): requirements-dev.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# The checkout on the venv's import path, so that the test plugin (tests/services.py, which starts
# the embedded services) loads before pytest-django reads the settings, whatever the cwd.
$(PTH): $(STAMP)
	@$(BIN)/python -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "groupbuy-checkout.pth").write_text("$(CURDIR)\n")'
	@touch $(PTH)

setup: $(STAMP) $(PTH)

migrate: setup
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

## make run: set up, start the embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are
## set), migrate, load demo data, serve API + admin + WebSockets + jobs on :$(PORT)
run: setup
	PORT=$(PORT) $(BIN)/python manage.py serve --migrate --seed

## make test: set up and run the whole suite, on a private embedded PostgreSQL + Redis unless
## DATABASE_URL / REDIS_URL are set
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

## make bench [ONLY=name]: run benchmarks, write tests/bench/results/<name>.json
bench: setup
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1) || echo "wrk not installed: using the slower Python load generator"; }
	$(BIN)/python -m tests.bench.run $(if $(ONLY),--only $(ONLY),)

## make lint: ruff (lint + format check) and mypy (core/, shop services and selectors)
## make mutate [MODULES="core.money shop.services.refunds"]: mutation testing of the money and
## rule modules (pyproject.toml [tool.mutmut]) on scratch servers; prints the share killed
mutate: setup
	rm -rf mutants
	$(BIN)/python -m core.embedded run -- $(BIN)/mutmut run --max-children 1 $(foreach m,$(MODULES),"$(m).*")
	$(BIN)/python -m tests.mutation.report $(MODULES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make lock: re-resolve pyproject.toml into the hash-locked requirement files (needs network)
lock:
	$(PYTHON) -m venv .lockenv && .lockenv/bin/pip install --quiet uv
	.lockenv/bin/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	.lockenv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements-dev.lock
	rm -rf .lockenv

## make clean: stop the embedded PostgreSQL, remove .venv and .run (the local database) and static files
clean:
	@test ! -x $(BIN)/python || $(BIN)/python -m core.embedded stop
	rm -rf $(VENV) .run staticfiles
