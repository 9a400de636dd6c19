#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers on 127.0.0.1 (the port of a local AMQP_URL, else 5672;
# install/start it locally if not). Skipped when AMQP_URL points elsewhere or a Docker
# engine can run testcontainers.
set -euo pipefail
PORT=5672
if [[ "${AMQP_URL:-}" =~ (127\.0\.0\.1|localhost):([0-9]+) ]]; then PORT=${BASH_REMATCH[2]}; fi
port_open() { (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; }
if [ -n "${AMQP_URL:-}" ] && [[ "$AMQP_URL" != *"127.0.0.1"* && "$AMQP_URL" != *"localhost"* ]]; then
  exit 0
fi
if port_open; then exit 0; fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if docker info >/dev/null 2>&1; then
    echo "no local broker; tests will start RabbitMQ with testcontainers"; exit 0
  fi
  echo "installing rabbitmq-server from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq rabbitmq-server >/dev/null
fi
echo "starting rabbitmq-server"
rabbitmq-server -detached || true
for _ in $(seq 1 90); do
  if port_open && rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1; then
    echo "broker is up"; exit 0
  fi
  sleep 1
done
echo "RabbitMQ did not come up on 127.0.0.1:$PORT" >&2
exit 1
