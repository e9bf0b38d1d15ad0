# The two commands of the README:
#   make lab    set everything up and open the lessons in JupyterLab
#   make test   set everything up and run every test
# Override the torch build with TORCH_SPEC / PIP_TORCH_ARGS (default: the CPU build of torch 2.13.0).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PYTEST_ARGS ?=
BIN := $(VENV)/bin

.PHONY: setup lab test browser frontend bench bench-env screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Debian's chromium for the browser tests (skipped with a reason when it is absent).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found and not root: browser tests will be skipped"; fi

# esbuild for the stale-bundle test (skipped with a reason when npm is absent).
frontend:
	@if command -v npm >/dev/null 2>&1; then (cd widgets && npm ci --silent --no-audit --no-fund >/dev/null); \
	else echo "npm not found: the stale-bundle test will be skipped"; fi

lab: setup
	$(BIN)/jupyter lab lessons/

test: setup browser frontend
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark in one command (comparisons with other tools need `make bench-env` first).
bench: setup browser
	$(BIN)/python benchmarks/run_all.py

# A separate environment for comparisons with other tools (never kit dependencies).
bench-env:
	$(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	.bench-venv/bin/python -m pip install -q -e . transformer-lens circuitsvis bertviz scikit-learn playwright
	# BertViz's page asks cdnjs for these; the payload benchmark serves them from disk to time its render.
	npm install --silent --no-audit --no-fund --prefix .bench-assets requirejs@2.3.6 d3@5.7.0 jquery@2.1.4 >/dev/null

# The README's pictures: the browser harness saves a PNG of each widget into docs/screenshots/.
screenshots: setup browser
	TMK_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/browser/test_screenshots.py
