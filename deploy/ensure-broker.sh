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
# RabbitMQ 3.10: a quorum queue with at-least-once dead-lettering deleted right as its
# dead-letter worker starts can crash rabbit_fifo_dlx_sup past its restart intensity;
# every such queue declared after that fails with INTERNAL_ERROR. Restart it if dead.
heal() {
  command -v rabbitmqctl >/dev/null 2>&1 || return 0
  if rabbitmqctl -q eval 'whereis(rabbit_fifo_dlx_sup).' 2>/dev/null | grep -qx undefined; then
    echo "restarting the broker's dead-letter supervisor (rabbit_fifo_dlx_sup was dead)"
    rabbitmqctl -q eval 'supervisor:restart_child(rabbit_sup, rabbit_fifo_dlx_sup).' >/dev/null 2>&1 || true
  fi
}
if port_open; then heal; exit 0; fi
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
