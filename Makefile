# orderworker: `make demo` runs the main job, `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/

.PHONY: install broker demo test test-fast lint bench chaos clean cluster cluster-stop chaos-cluster

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

broker:
	@bash deploy/ensure-broker.sh

demo: install broker
	$(BIN)/python -m worker demo

test: install broker
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check worker schemas tests
	$(BIN)/mypy

bench: install broker
	$(BIN)/python -m worker.lab.bench

chaos: install broker
	$(BIN)/python -m worker.lab.chaos

# three local RabbitMQ nodes (owc1..3@localhost, AMQP 5781-5783) under var/cluster/
cluster: install broker
	$(BIN)/python -m worker.lab.cluster start

cluster-stop: install
	$(BIN)/python -m worker.lab.cluster stop

# make chaos on the cluster, killing and restarting nodes under the workers
chaos-cluster: cluster
	$(BIN)/python -m worker.lab.chaos_cluster

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
