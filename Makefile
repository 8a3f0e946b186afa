# genreflow: the two set-up commands of the README are `make repro` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test test-all lint clean-outputs

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	touch $@

install: $(BIN)/.installed

## The main job: real GTZAN from $GTZAN_DIR if set, else the synthetic set; then `dvc repro`.
repro: install
	genreflow data auto
	dvc repro

## The default test suite (slow tests excluded).
test: install
	pytest

test-all: install
	pytest -m "slow or not slow"

lint: install
	ruff check src tests scripts
