# orderworker: `make demo` runs the main job, `make test` runs the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# AMQP_URL is passed through when set; unset, the tests use the local broker on
# 127.0.0.1:5672 when one answers, else RabbitMQ in testcontainers when a Docker engine
# runs (deploy/ensure-broker.sh then installs nothing).
# make demo EXCHANGE=binance|bybit: the same orders via local servers and the real ccxt client
EXCHANGE ?= paper

.PHONY: install broker demo test test-fast lint bench bench-tracking chaos clean cluster cluster-stop chaos-cluster sim bench-stream

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
	EXCHANGE=$(EXCHANGE) $(BIN)/python -m worker demo

# most tests in parallel, the broker-restarting ones beside them on a node of their own,
# then the latency measurement alone (deploy/run-tests.sh)
test: install broker
	@bash deploy/run-tests.sh

test-fast: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check worker schemas tests examples
	$(BIN)/mypy

bench: install broker
	$(BIN)/python -m worker.lab.bench
	$(BIN)/python -m worker.lab.bench_ccxt
	$(BIN)/python -m worker.lab.bench_paced
	$(BIN)/python -m worker.lab.bench_tracking

# exchange requests/minute for one account with 1, 100 and 1000 resting orders (issue 9)
bench-tracking: install broker
	$(BIN)/python -m worker.lab.bench_tracking

# fill -> event latency (p50, p99) and REST requests/min with 100 resting orders,
# order stream vs REST-only (issue 14)
bench-stream: install broker
	$(BIN)/python -m worker.lab.bench_stream

chaos: install broker
	$(BIN)/python -m worker.lab.chaos

# deterministic simulation of placement (issue 10): make sim [N=100000] [START=0]
# [GATED=1: the profile make test judges] [FAULTS=-kind,+kind] [SKEW=1.0]; SEED=s replays one
N ?= 100000
START ?= 0
sim: install
	$(BIN)/python -m worker.lab.sim_placement $(if $(SEED),--seed $(SEED),--n $(N) --start $(START)) \
		$(if $(GATED),--gated) $(if $(FAULTS),--faults=$(FAULTS)) $(if $(SKEW),--max-skew $(SKEW))

# three local RabbitMQ nodes (owc1..3@localhost, AMQP 5781-5783) under /tmp/orderworker-cluster/
cluster: install broker
	$(BIN)/python -m worker.lab.cluster start

cluster-stop: install
	$(BIN)/python -m worker.lab.cluster stop

# make chaos on the cluster, killing and restarting nodes under the workers
chaos-cluster: cluster
	$(BIN)/python -m worker.lab.chaos_cluster

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
