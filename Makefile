# The two commands of the README: `make demo` and `make test`. Each builds its own
# virtual environment (.venv) from the package registries first. The demo is its own small
# distribution (demo/setup.py, pyramid_jeff_demo), never part of pyramid_jeff's wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The lowest supported versions (.ci/floors.txt), in a venv of their own.
FLOORS_VENV ?= .venv-floors
# Every test that exercises pyramid, redis-py, msgpack, pymemcache or SQLAlchemy, but the slow fuzzing
# (tests/hostile), the browser and the packaging tests.
FLOORS_TESTS ?= tests/test_redis_floor.py tests/stores tests/test_functional.py \
	tests/test_redirects.py tests/test_identity.py tests/test_settings.py tests/test_store_settings.py \
	tests/test_malformed_cookies.py tests/test_security.py tests/test_integration.py tests/demo
# Reads the retry count with Retry.get_retries(), which redis-py 5.0 does not have yet; the
# no-retry behaviour itself is tested by tests/stores/redis.
FLOORS_DESELECT ?= --deselect tests/test_store_settings.py::test_store_urls_choose_the_store

.PHONY: demo demo-install test test-floors fuzz lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python setup.py demo/setup.py
	$(BIN)/python -m pip install --quiet -e . -e ./demo
	touch $@

$(VENV)/.test-installed: $(BIN)/python setup.py demo/setup.py
	$(BIN)/python -m pip install --quiet -e '.[test]' -e ./demo
	touch $@

demo-install: $(VENV)/.demo-installed

# Run the demo on http://localhost:6543/ (sessions in a SQLite file: no server needed);
# `make demo PORT=6544` for another port.
demo: $(VENV)/.demo-installed
	$(BIN)/pserve development.ini $(if $(PORT),http_port=$(PORT))

# Every test (Redis tests start a private redis-server; REDIS_URL may name another), with
# branch coverage and its floor (pyproject.toml), then lint and strict type checks.
test: $(VENV)/.test-installed
	$(BIN)/python -m pytest --cov
	$(MAKE) lint

# The cookie fuzz at 200 times `make test`'s 1,000 examples: a nightly-style run (about 12 minutes).
fuzz: $(VENV)/.test-installed
	JEFF_FUZZ_EXAMPLES=200000 $(BIN)/python -m pytest -p no:cacheprovider tests/hostile

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The same code on the lowest declared versions of pyramid, redis-py and msgpack (CI runs it
# after `make test`): a fresh .venv-floors each time, so that nothing newer lingers in it.
test-floors:
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install --quiet -c .ci/floors.txt -e '.[memcached,sql]' \
		-e ./demo pytest webtest hypothesis pyramid_tm transaction zope.sqlalchemy \
		'psycopg[binary]' pymysql
	$(FLOORS_VENV)/bin/python .ci/check_floors.py .ci/floors.txt
	$(FLOORS_VENV)/bin/python -m pytest -p no:cacheprovider $(FLOORS_DESELECT) $(FLOORS_TESTS)

clean:
	rm -rf $(VENV) $(FLOORS_VENV) build *.egg-info demo/build demo/*.egg-info
