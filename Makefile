# genreflow: the two set-up commands of the README are `make repro` and `make test`.
# `make help` lists the targets (from their `##` comments).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

# what the pipeline derives from data/ (dvc.yaml's outputs); never data/ or tracking state
OUTPUTS := artifacts reports plots models dvc_plots

.PHONY: help install plots-deps repro test test-all lint check-views clean-outputs

## List the targets and what they do.
help:
	@awk '/^## /{doc = substr($$0, 4); next} \
	      /^[a-zA-Z_-]+:/{if (doc) {split($$1, t, ":"); printf "  %-14s %s\n", t[1], doc}; doc = ""} \
	      !/^## /{doc = ""}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps musicnn==0.1.0
	touch $@

## Create .venv and install genreflow with its dev tools (redone when pyproject.toml changes).
install: $(BIN)/.installed $(VENV)/share/genreflow/dvc_plots.html

## `dvc plots show` offline: vega, vega-lite, vega-embed from npm, inlined into the page template.
## Built once by `install`; `make plots-deps` rebuilds it (e.g. after a CDN fallback without npm).
$(VENV)/share/genreflow/dvc_plots.html: scripts/dvc_plots_template.html scripts/plots_template.py | $(BIN)/.installed
	$(BIN)/python scripts/plots_template.py --dest $(VENV)/share/genreflow

## Rebuild the offline `dvc plots show` template (vega libraries from npm).
plots-deps: $(BIN)/.installed
	$(BIN)/python scripts/plots_template.py --dest $(VENV)/share/genreflow

## The main job: real GTZAN from $GTZAN_DIR if set, else the synthetic set; then `dvc repro`.
repro: install
	genreflow data auto
	dvc repro

## The default test suite (slow tests excluded).
test: install
	pytest

## Every test, the slow ones too (end-to-end `dvc repro`, ...).
test-all: install
	pytest -m "slow or not slow"

## ruff over src, tests and scripts.
lint: install
	ruff check src tests scripts

## Delete the pipeline outputs (artifacts reports plots models dvc_plots); keeps data/, mlflow.db, mlruns/, optuna.db.
clean-outputs:
	rm -rf $(OUTPUTS)

## Render `dvc plots show` and `genreflow report` in headless Chromium; fail on an empty chart.
check-views: install
	python scripts/check_views.py --project . --out tmp/views
