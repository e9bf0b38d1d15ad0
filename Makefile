# The two commands of the README:
#   make lab    set everything up and open the lessons in JupyterLab
#   make test   set everything up and run every test
# Which torch: scripts/torch_install_args.py decides and says why (README, "Two commands"). By default
# the CPU build of torch 2.13.0 on Linux without an NVIDIA GPU (PyTorch's CPU wheel index, or pip's own
# sources when that index does not answer), PyPI's build elsewhere (CUDA on Linux with an NVIDIA GPU).
#   make test TORCH_BUILD=cpu|cuda                            force one
#   make test PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu128"   any pip arguments
#   make test TORCH_SPEC="torch==2.12.0"                      any requirement (with PIP_TORCH_ARGS or alone)

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_BUILD ?= auto
TORCH_SPEC ?=
PIP_TORCH_ARGS ?=
# prints the pip arguments for torch (its reason on stderr); `eval` keeps its shell quoting
TORCH_ARGS = scripts/torch_install_args.py --version "$(TORCH_VERSION)" --build "$(TORCH_BUILD)" \
	--spec "$(TORCH_SPEC)" --pip-args "$(PIP_TORCH_ARGS)"
PYTEST_ARGS ?=
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
BIN := $(VENV)/bin

.PHONY: setup lab test browser frontend bench bench-env screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	torch_args="$$($(BIN)/python $(TORCH_ARGS))" && eval "$(BIN)/python -m pip install -q $$torch_args"
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

# JupyterLab serves the repository (lessons/, docs/, ...) and opens in lessons/. As root (the usual case
# in containers) it needs --allow-root, added here. Options for JupyterLab go in LAB_ARGS, e.g.
#   make lab LAB_ARGS="--port 9999 --no-browser"
# jupyter-config/ (installed with the package too): widget state is saved with the notebook, so a notebook
# reopened without its kernel shows its views, and nbconvert exports show the views' offline copies.
lab: setup
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter-config$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/lessons $(ALLOW_ROOT) $(LAB_ARGS)

test: setup browser frontend
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark in one command (comparisons with other tools need `make bench-env` first).
bench: setup browser
	$(BIN)/python benchmarks/run_all.py

# A separate environment for comparisons with other tools (never kit dependencies).
bench-env:
	$(PYTHON) -m venv .bench-venv
	torch_args="$$(.bench-venv/bin/python $(TORCH_ARGS))" && eval ".bench-venv/bin/python -m pip install -q $$torch_args"
	.bench-venv/bin/python -m pip install -q -e . transformer-lens circuitsvis bertviz scikit-learn playwright
	# BertViz's page asks cdnjs for these; the payload benchmark serves them from disk to time its render.
	npm install --silent --no-audit --no-fund --prefix .bench-assets requirejs@2.3.6 d3@5.7.0 jquery@2.1.4 >/dev/null

# The README's pictures: the browser harness saves a PNG of each widget into docs/screenshots/.
screenshots: setup browser
	TMK_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/browser/test_screenshots.py
