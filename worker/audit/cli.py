"""``orderworker audit run|history|summary|export``.

Reads never create a store; an unknown id, a missing or unreadable store is a
one-line error and a non-zero exit (1: nothing found, 2: bad store or input).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import sys
from typing import Any

from aio_pika.exceptions import AMQPConnectionError

from worker.audit.store import COLUMNS, AuditStore, StoreError
from worker.audit.stores import open_store
from worker.config import unreachable

EXPORT_COLUMNS = [c for c in COLUMNS if c != "body"]


def add_audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["run", "history", "summary", "export"])
    p.add_argument("key", nargs="?", help="command_id or client_order_id (history)")
    p.add_argument("--db", default=os.environ.get("OW_AUDIT_DB", "orderworker-audit.sqlite3"),
                   help="SQLite path or postgresql:// URL (env OW_AUDIT_DB)")
    p.add_argument("--amqp-url", default=os.environ.get(
        "OW_AMQP_URL", os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--shards", type=int, default=int(os.environ.get("OW_SHARDS", "4")))
    p.add_argument("--quorum-group-size", type=int,
                   default=int(os.environ["OW_QUORUM_GROUP_SIZE"])
                   if os.environ.get("OW_QUORUM_GROUP_SIZE") else None,
                   help="replicas per quorum queue, as the workers declare them "
                        "(env OW_QUORUM_GROUP_SIZE; default: the broker's)")
    p.add_argument("--delivery-limit", type=int,
                   default=os.environ.get("OW_DELIVERY_LIMIT", "5"))
    p.add_argument("--metrics-port", type=int, default=os.environ.get("OW_METRICS_PORT", "0"),
                   help="run: serve /healthz /readyz /metrics here (env OW_METRICS_PORT)")
    p.add_argument("--format", choices=["csv", "jsonl"], default="jsonl",
                   help="export: csv (one column per field) or jsonl (the events as sent)")
    p.add_argument("--account", help="export: only this account")


async def _run(args: argparse.Namespace, store: AuditStore) -> int:
    from worker.audit.consumer import AuditConsumer
    from worker.observability import serve_audit_observability

    consumer = AuditConsumer(args.amqp_url, store, prefix=args.prefix, shards=args.shards,
                             delivery_limit=args.delivery_limit,
                             quorum_group_size=args.quorum_group_size)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await serve_audit_observability(consumer, args.metrics_port)
    try:
        await consumer.start()
        print(f"auditing {consumer.names.audit_queue} into {args.db}", flush=True)
        await stop.wait()
        await consumer.stop()
    finally:
        if server is not None:
            await server.cleanup()
    print(f"stored {consumer.stored} new events of {consumer.received} received")
    return 0


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def _read(args: argparse.Namespace, store: AuditStore) -> int:
    if args.action == "history":
        if not args.key:
            print("history needs a command_id or client_order_id", file=sys.stderr)
            return 2
        rows = await store.history(args.key)
        if not rows:
            print(f"no events for {args.key!r} (a command_id or client_order_id) in the "
                  "audit store", file=sys.stderr)
            return 1
        for r in rows:
            extra = f" reason={r['reason']}" if r.get("reason") else ""
            print(f"{_plain(r['occurred_at'])}  seq={r['sequence']:<8} {r['kind']:<23} "
                  f"{r.get('side') or '':<4} filled={r['filled']}/{r['amount']} "
                  f"avg={r['average_price']} fee={r['fee']} {r.get('fee_currency') or ''}"
                  f"{extra}  {r['event_id']}")
    elif args.action == "summary":
        counts = await store.counts()
        open_orders = await store.open_orders()
        print("events by kind: " + (", ".join(f"{k}={n}" for k, n in sorted(counts.items()))
                                    or "none"))
        print(f"orders accepted without a terminal event: {len(open_orders)}")
        for cid in open_orders[:20]:
            print(f"  {cid}")
    else:
        rows = await store.export(args.account)
        if args.format == "jsonl":
            for r in rows:
                body = r["body"]
                print(body if isinstance(body, str) else json.dumps(body))
        else:
            writer = csv.DictWriter(sys.stdout, EXPORT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _plain(v) for k, v in r.items()})
    return 0


async def audit_main(args: argparse.Namespace) -> int:
    if args.action == "run":  # a long-running service: a config typo stops it too
        from worker.cli import report
        from worker.settings import ConfigError, load_settings

        try:
            load_settings()
        except ConfigError as exc:
            return report(exc)
    store = open_store(args.db, create=args.action == "run")
    try:
        if args.action == "run":
            return await _run(args, store)
        return await _read(args, store)
    except StoreError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    except (AMQPConnectionError, OSError) as exc:
        print(f"audit: {unreachable(args.amqp_url, exc)}", file=sys.stderr)
        return 3
    finally:
        await store.close()
