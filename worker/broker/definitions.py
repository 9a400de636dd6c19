"""RabbitMQ definitions file for the topology in ``topology.py``, for brokers that
load definitions at boot:

    python -m worker.broker.definitions > deploy/rabbitmq/definitions.json   # topology only
    BROKER_WORKER_PASSWORD=... BROKER_MONITOR_PASSWORD=... \
        python -m worker.broker.definitions --users --out /defs/definitions.json

With ``--users`` it adds two users whose passwords come from the environment
(salted hashes, never a fixed password): ``orderworker`` for workers, clients
and the audit consumer, and ``orderworker-monitor`` with the ``monitoring`` tag
and no configure/write/read rights, for KEDA's RabbitMQ scaler and exporters.
Because the users are in the file the broker imports at every boot, a boot
never undoes them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.broker.contract import CONTRACT_QUEUE_ARGS, contract_queue
from worker.broker.topology import QUORUM, Names, command_key

WORKER_USER, MONITOR_USER = "orderworker", "orderworker-monitor"
PASSWORD_VARS = {WORKER_USER: "BROKER_WORKER_PASSWORD", MONITOR_USER: "BROKER_MONITOR_PASSWORD"}


def password_hash(password: str, salt: bytes | None = None) -> str:
    """rabbit_password_hashing_sha256: base64(salt + sha256(salt + password)), random salt."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class MissingPassword(ValueError):
    pass


def users(env: Mapping[str, str], vhost: str = "/") -> dict[str, list[dict[str, Any]]]:
    """The two users with passwords from ``env`` (MissingPassword names what to set)."""
    missing = [var for var in PASSWORD_VARS.values() if len(env.get(var, "")) < 12]
    if missing:
        raise MissingPassword(f"set {' and '.join(missing)} (at least 12 characters) to "
                              "generate broker users")
    hashed = {u: password_hash(env[var]) for u, var in PASSWORD_VARS.items()}
    return {
        "users": [
            {"name": WORKER_USER, "password_hash": hashed[WORKER_USER],
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
            {"name": MONITOR_USER, "password_hash": hashed[MONITOR_USER],
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["monitoring"]}],
        "permissions": [
            {"user": WORKER_USER, "vhost": vhost, "configure": ".*", "write": ".*",
             "read": ".*"},
            # vhost access only: enough for the management API's queue depths
            {"user": MONITOR_USER, "vhost": vhost, "configure": "^$", "write": "^$",
             "read": "^$"}],
    }


def definitions(prefix: str = "orderworker", shards: int = 8,
                delivery_limit: int = 20, track_cycle_s: float = 10.0) -> dict[str, Any]:
    """The topology (vhost, exchanges, queues, bindings), without users."""
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
    def track_args(k: int) -> dict[str, Any]:
        return {**QUORUM, "x-message-ttl": int(track_cycle_s * 1000),
                "x-dead-letter-exchange": n.tracking, "x-dead-letter-routing-key": str(k),
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}

    ks = range(shards)
    return {
        "vhosts": [{"name": vhost}],
        "exchanges": [exchange(n.commands, "direct"), exchange(n.events, "topic"),
                      exchange(n.dlx, "fanout"), exchange(n.tracking, "direct")],
        "queues": [queue(n.shard_queue(k), shard_args) for k in ks]
        + [queue(n.track_queue(k), track_args(k)) for k in ks]
        + [queue(n.memo_queue(k), {**QUORUM, "x-single-active-consumer": True}) for k in ks]
        + [
            queue(n.audit_queue, {**QUORUM, "x-dead-letter-exchange": n.dlx}),
            queue(n.dead_queue, dict(QUORUM)),
            queue(n.dead_watch_queue, {**QUORUM, "x-single-active-consumer": True}),
            queue(contract_queue(n), {**CONTRACT_QUEUE_ARGS, **QUORUM})],
        "bindings": [binding(n.commands, n.shard_queue(k), command_key(k, shards)) for k in ks]
        + [binding(n.tracking, n.shard_queue(k), str(k)) for k in ks] + [
            binding(n.events, n.audit_queue, "order.#"), binding(n.dlx, n.dead_queue, ""),
            binding(n.dlx, n.dead_watch_queue, "")],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m worker.broker.definitions")
    p.add_argument("--prefix", default="orderworker")
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--delivery-limit", type=int, default=20)
    p.add_argument("--track-cycle-s", type=float, default=10.0)
    p.add_argument("--users", action="store_true",
                   help="add the users, passwords from " + " and ".join(PASSWORD_VARS.values()))
    p.add_argument("--out", help="write here instead of standard output")
    p.add_argument("--mode", default="600", help="--out file mode, octal (default 600)")
    a = p.parse_args(argv)
    doc = definitions(a.prefix, a.shards, a.delivery_limit, a.track_cycle_s)
    if a.users:
        try:
            doc.update(users(os.environ))
        except MissingPassword as exc:
            print(f"definitions: {exc}", file=sys.stderr)
            return 2
    text = json.dumps(doc, indent=2) + "\n"
    if a.out:
        path = Path(a.out)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)
        path.chmod(int(a.mode, 8))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
