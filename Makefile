# genreflow: the two set-up commands of the README are `make repro` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install plots-deps repro test test-all lint check-views clean-outputs

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed $(VENV)/share/genreflow/dvc_plots.html

## `dvc plots show` offline: vega, vega-lite, vega-embed from npm, inlined into the page template.
## Built once by `install`; `make plots-deps` rebuilds it (e.g. after a CDN fallback without npm).
$(VENV)/share/genreflow/dvc_plots.html: scripts/dvc_plots_template.html scripts/plots_template.py | $(BIN)/.installed
	$(BIN)/python scripts/plots_template.py --dest $(VENV)/share/genreflow

plots-deps: $(BIN)/.installed
	$(BIN)/python scripts/plots_template.py --dest $(VENV)/share/genreflow

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

## Render `dvc plots show` and `genreflow report` in headless Chromium; fail on an empty chart.
check-views: install
	python scripts/check_views.py --project . --out tmp/views
