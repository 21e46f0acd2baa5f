# uploadd: `make run` starts the server on its embedded defaults,
# `make test` runs lint, types and the whole test suite. Both set up first.
# `make run-cluster` starts several instances behind HAProxy (README).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run run-cluster test lint unit integration bench bench-peers bench-scaleout clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml scripts/system-packages tests/clients/package-lock.json
	scripts/system-packages
	$(PYTHON) scripts/check-python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat mode puts the clone itself on sys.path: twistd finds plugins in
	# twisted/plugins/ of every sys.path entry (the folder has no __init__.py)
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/twistd --help > /dev/null
	# real tus clients the tests drive (pinned by the lock file)
	npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error
	touch $@

# ports are variables (PORT, NODE_AMP_PORT, ...; see the script)
run: setup
	BIN=$(BIN) scripts/run

# PostgreSQL, RabbitMQ, a storage node, two uploadd instances and HAProxy on
# loopback; ports and INSTANCES are variables (see the script)
run-cluster: setup
	BIN=$(BIN) scripts/run-cluster

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

bench: setup bench-peers
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/resumable.py
	$(BIN)/python bench/browser.py
	$(BIN)/python bench/s3.py

# SQLite vs PostgreSQL per tus chunk, one vs two instances behind HAProxy
# (private PostgreSQL, RabbitMQ and HAProxy on loopback)
bench-scaleout: setup
	$(BIN)/python bench/scaleout.py

# the peers uploadd is measured against: @tus/server (npm), tuspyserver (PyPI)
bench-peers: bench/work/peers-venv/.installed
bench/work/peers-venv/.installed: bench/peers/package-lock.json
	npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error
	$(PYTHON) -m venv bench/work/peers-venv
	bench/work/peers-venv/bin/pip install --quiet tuspyserver==4.4.3 uvicorn==0.38.0
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info var bench/work
