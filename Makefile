PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench clean js

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/croupier serve --demo --host 127.0.0.1 --port 8000

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(DEVSTAMP)
	$(BIN)/mypy

# The npm packages tests and benchmarks drive: every committed package-lock.json, installed
# with `npm ci` when its node_modules is missing or older than the lock.
JS_LOCKS := $(shell git ls-files '*package-lock.json' 2>/dev/null)

js:
	@for lock in $(JS_LOCKS); do \
	  dir=$$(dirname $$lock); \
	  if [ ! $$dir/node_modules/.package-lock.json -nt $$lock ]; then \
	    (cd $$dir && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	  fi; \
	done

unit: $(DEVSTAMP) js
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/croupier bench fanout
	$(BIN)/croupier bench publish

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .mypy_cache .pytest_cache .ruff_cache
