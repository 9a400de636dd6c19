#!/usr/bin/env bash
# `make test`: the whole suite in the least wall time on 2 cores.
#  1. most tests in parallel (pytest -n 4) on the broker the tests use (AMQP_URL or 5672),
#     while the tests that restart their broker (marker restarts_broker) run beside them
#     on a throwaway node of their own (deploy/test-node.sh);
#  2. then, alone, the latency measurement (marker serial).
# Without that node (no rabbitmq-server package) the broker-restarting tests run alone
# after step 1, on the shared broker.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest -q)
bash deploy/test-node.sh start
restarts=""
if [ -f var/testnode/env ]; then
  ( . var/testnode/env; exec "${PYTEST[@]}" -m restarts_broker ) > var/testnode/pytest.log 2>&1 &
  restarts=$!
fi
"${PYTEST[@]}" -n 4 -m "not serial and not restarts_broker"; a=$?
if [ -n "$restarts" ]; then
  wait "$restarts"; b=$?
  echo "--- tests that restart their broker (own node, ran beside the above):"
  cat var/testnode/pytest.log
else
  "${PYTEST[@]}" -m restarts_broker; b=$?
fi
"${PYTEST[@]}" -m serial; c=$?
bash deploy/test-node.sh stop
[ "$a" = 0 ] && [ "$b" = 0 ] && [ "$c" = 0 ]
