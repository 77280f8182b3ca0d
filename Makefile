# One venv, made on demand; every target installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install lint test demo bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,lint]'
	rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# ruff (lint, then the formatting check) and mypy; `make test` runs them first, so CI enforces them.
lint: install
	$(BIN)/ruff check batchtts tests benchmarks
	$(BIN)/ruff format --check batchtts tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

demo: install
	$(BIN)/batchtts run --job jobs/demo.toml

bench: install
	$(BIN)/python benchmarks/run.py

docs: install
	$(BIN)/python -m pip install -q -e '.[docs]' && $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo-out nightly-out audiobook-out .pytest_cache
