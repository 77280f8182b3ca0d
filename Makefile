# One venv, made on demand; every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CKSUM   = $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# One stamp per set of extras: `make demo` installs only what the demo needs (speech),
# `make test` the test, bench and lint tools too.
DEV     = $(VENV)/.installed-dev-$(CKSUM)
DEMO    = $(VENV)/.installed-demo-$(CKSUM)

.PHONY: install lint test demo bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEV): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,lint]'
	rm -f $(VENV)/.installed-dev-*; touch $(DEV)

$(DEMO): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[speech]'
	rm -f $(VENV)/.installed-demo-*; touch $(DEMO)

install: $(DEV)

# The report page's browser test drives Debian's chromium (through Playwright, never its own browser
# download): installed here when missing, a no-op when present.
CHROMIUM = /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# ruff (lint, then the formatting check) and mypy; `make test` runs them first, so CI enforces them.
lint: install
	$(BIN)/ruff check batchtts tests benchmarks
	$(BIN)/ruff format --check batchtts tests benchmarks
	$(BIN)/mypy

test: lint $(CHROMIUM)
	$(BIN)/python -m pytest

demo: $(DEMO)
	$(BIN)/batchtts run --job jobs/demo.toml
	@echo "batchtts: installed in .venv: run .venv/bin/batchtts --help (or 'source .venv/bin/activate', then batchtts)"

bench: install
	$(BIN)/python benchmarks/run.py

docs: install
	$(BIN)/python -m pip install -q -e '.[docs]' && $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-out nightly-out audiobook-out .pytest_cache
