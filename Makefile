# The two commands of the README: `make demo` and `make test`. Each builds its own
# virtual environment (.venv) from the package registries first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test-installed: $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Run the demo on http://localhost:6543/ (memory store: no Redis needed).
demo: $(VENV)/.demo-installed
	$(BIN)/pserve development.ini

# Every test (Redis tests start a private redis-server; REDIS_URL may name another),
# then lint and strict type checks.
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest
	$(MAKE) lint

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
