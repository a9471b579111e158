# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
HOST ?= 127.0.0.1
MFO_PORT ?= 8081
LISTEN_PORT ?= 8080
CONFIG ?= examples/config.yaml
export MFO_PORT LISTEN_PORT

.PHONY: install install-dev run dev-server test lint typecheck unit redis bench lock clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is needed" or 0)'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## run: the main job on its embedded defaults: the reference MFO server on :8081 and
## `mfo serve` (listener on :8080) forwarding to it, with examples/config.yaml
run: install
	@mkdir -p .mfo
	@trap 'kill $$dev 2>/dev/null; wait $$dev 2>/dev/null' EXIT INT TERM; \
	$(BIN)/mfo dev-server --host $(HOST) --port $(MFO_PORT) --db .mfo/dev-server.db & dev=$$!; \
	echo "Send the example events (one folder per source, see examples/events/README.md):"; \
	for f in examples/events/*/*.json; do s=$${f#examples/events/}; \
	  echo "  LISTEN_PORT=$(LISTEN_PORT) $(BIN)/mfo send $$f --config $(CONFIG) --source $${s%%/*}"; done; \
	echo "Then see the runs they started:  $(BIN)/mfo runs list"; \
	$(BIN)/mfo serve --config $(CONFIG)

## dev-server: only the reference MFO server
dev-server: install
	$(BIN)/mfo dev-server --host $(HOST) --port $(MFO_PORT)

## test: lint, types and the test suite
test: install-dev lint typecheck unit

lint: install-dev
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: install-dev
	$(BIN)/mypy src/mfo_client

unit: install-dev redis
	$(BIN)/pytest

## redis: the Redis the tests use on 127.0.0.1:6379, started (no persistence) unless one answers
REDIS_PING := $(BIN)/python -c "import redis; redis.Redis('127.0.0.1', 6379, socket_timeout=1).ping()" 2>/dev/null
redis: install-dev
	@$(REDIS_PING) && exit 0; \
	if ! command -v redis-server >/dev/null; then \
	  echo "note: no Redis on 127.0.0.1:6379 and no redis-server to start; the redis tests skip (fail with CI=true)" >&2; exit 0; fi; \
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" >/dev/null; \
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do $(REDIS_PING) && exit 0; sleep 0.25; done; \
	echo "error: redis-server was started but does not answer on 127.0.0.1:6379" >&2; exit 1

bench: install-dev
	$(BIN)/python bench/client_overhead.py
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/flows.py
	$(BIN)/python bench/scale.py

## lock: re-resolve the newest allowed versions into constraints.txt
lock: $(BIN)/python
	$(PIP) install --upgrade -e '.[dev]'
	{ echo "# Exact versions that make installs with (pip -c). Regenerate with: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mfo-client'; } > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
