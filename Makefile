# One command per task. Everything installs into .venv from scratch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format mypy unit all clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/vigie demo

test: install
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check shared services vigie tests
	$(BIN)/ruff format --check shared services vigie tests

format: install
	$(BIN)/ruff format shared services vigie tests
	$(BIN)/ruff check --fix shared services vigie tests

mypy: install
	$(BIN)/mypy

all: lint mypy test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
