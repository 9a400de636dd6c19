#!/usr/bin/env bash
# A throwaway RabbitMQ node for the tests that restart their broker (make test runs them
# beside the parallel step, which keeps the broker on 5672 to itself).
#   deploy/test-node.sh start   start it (/tmp/orderworker-testnode, AMQP 5674) and write
#                               var/testnode/env
#   deploy/test-node.sh stop    stop it and remove both
# Without the rabbitmq-server package (testcontainers) it writes no env file: the caller
# then runs those tests on the shared broker, after the others.
set -euo pipefail
cd "$(dirname "$0")/.."
# the node runs as the rabbitmq user, which may not reach into this checkout (a private
# CI directory): its files live under /tmp; var/testnode/env tells the tests about it
BASE="${OW_TEST_NODE_DIR:-/tmp/orderworker-testnode}"; NAME=owtest; PORT=5674
ENV_FILE="$PWD/var/testnode/env"
export RABBITMQ_NODENAME=$NAME@localhost RABBITMQ_NODE_PORT=$PORT \
  RABBITMQ_DIST_PORT=$((PORT + 20000)) RABBITMQ_MNESIA_BASE=$BASE/mnesia \
  RABBITMQ_LOG_BASE=$BASE/log RABBITMQ_CONFIG_FILE=$BASE/rabbitmq \
  RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins
case "${1:-start}" in
  stop)
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -rf "$BASE" "$(dirname "$ENV_FILE")"; exit 0 ;;
  start) ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
rm -f "$ENV_FILE"; mkdir -p "$(dirname "$ENV_FILE")"
command -v rabbitmq-server >/dev/null 2>&1 || exit 0
mkdir -p "$BASE/mnesia" "$BASE/log"; chmod 755 "$BASE"
printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users = none\n' $PORT > "$BASE/rabbitmq.conf"
echo "[]." > "$BASE/enabled_plugins"
if [ "$(id -u)" = 0 ]; then chown -R rabbitmq:rabbitmq "$BASE"; fi
if ! rabbitmqctl -q await_startup --timeout 2 >/dev/null 2>&1; then
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 90); do
    rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 && break
    sleep 1
  done
fi
rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1 || {
  echo "test node $NAME did not start (see $BASE/log); running its tests on the shared broker" >&2
  exit 0; }
env | grep '^RABBITMQ_' | sed 's/^/export /' > "$ENV_FILE"
echo "export AMQP_URL=amqp://guest:guest@127.0.0.1:$PORT/" >> "$ENV_FILE"
