"""RabbitMQ definitions file for the topology in ``topology.py``, for brokers that
load definitions at boot:

    python -m worker.broker.definitions > deploy/rabbitmq/definitions.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from typing import Any

from worker.broker.topology import QUORUM, Names


def password_hash(password: str, salt: bytes = b"owrk") -> str:
    """rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(prefix: str = "orderworker", shards: int = 8, delivery_limit: int = 5,
                user: str = "orderworker", password: str = "orderworker") -> dict[str, Any]:
    n = Names(prefix, shards)
    vhost = "/"

    def exchange(name: str, kind: str) -> dict[str, Any]:
        return {"name": name, "vhost": vhost, "type": kind, "durable": True,
                "auto_delete": False, "internal": False, "arguments": {}}

    def queue(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False,
                "arguments": args}

    def binding(source: str, dest: str, key: str) -> dict[str, Any]:
        return {"source": source, "vhost": vhost, "destination": dest,
                "destination_type": "queue", "routing_key": key, "arguments": {}}

    shard_args = {**QUORUM, "x-single-active-consumer": True, "x-delivery-limit": delivery_limit,
                  "x-dead-letter-exchange": n.dlx, "x-dead-letter-strategy": "at-least-once",
                  "x-overflow": "reject-publish"}
    return {
        "users": [{"name": user, "password_hash": password_hash(password),
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
        "vhosts": [{"name": vhost}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "exchanges": [exchange(n.commands, "direct"), exchange(n.events, "topic"),
                      exchange(n.dlx, "fanout")],
        "queues": [queue(n.shard_queue(k), shard_args) for k in range(shards)] + [
            queue(n.audit_queue, {**QUORUM, "x-dead-letter-exchange": n.dlx}),
            queue(n.dead_queue, dict(QUORUM))],
        "bindings": [binding(n.commands, n.shard_queue(k), str(k)) for k in range(shards)] + [
            binding(n.events, n.audit_queue, "order.#"), binding(n.dlx, n.dead_queue, "")],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prefix", default="orderworker")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--delivery-limit", type=int, default=5)
    a = p.parse_args()
    print(json.dumps(definitions(a.prefix, a.shards, a.delivery_limit), indent=2))


if __name__ == "__main__":
    main()
