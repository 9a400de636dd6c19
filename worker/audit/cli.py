"""``orderworker audit run|history|summary``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from worker.audit.consumer import AuditConsumer
from worker.audit.stores import open_store

DEFAULT_DB = os.environ.get("OW_AUDIT_DB", "orderworker-audit.sqlite3")


def add_audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["run", "history", "summary"])
    p.add_argument("key", nargs="?", help="command_id or client_order_id (history)")
    p.add_argument("--db", default=DEFAULT_DB,
                   help="SQLite path or postgresql:// URL (env OW_AUDIT_DB)")
    p.add_argument("--amqp-url", default=os.environ.get(
        "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--prefix", default=os.environ.get("OW_PREFIX", "orderworker"))
    p.add_argument("--shards", type=int, default=int(os.environ.get("OW_SHARDS", "4")))
    p.add_argument("--quorum-group-size", type=int,
                   default=int(os.environ["OW_QUORUM_GROUP_SIZE"])
                   if os.environ.get("OW_QUORUM_GROUP_SIZE") else None,
                   help="replicas per quorum queue, as the workers declare them "
                        "(env OW_QUORUM_GROUP_SIZE; default: the broker's)")


async def audit_main(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    if args.action == "run":
        consumer = AuditConsumer(args.amqp_url, store, prefix=args.prefix, shards=args.shards,
                                 quorum_group_size=args.quorum_group_size)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consumer.start()
        print(f"auditing {consumer.names.audit_queue} into {args.db}", flush=True)
        await stop.wait()
        await consumer.stop()
        print(f"stored {consumer.stored} new events of {consumer.received} received")
        return 0
    try:
        if args.action == "history":
            if not args.key:
                print("history needs a command_id or client_order_id")
                return 2
            for r in await store.history(args.key):
                print(f"{r['occurred_at']}  seq={r['sequence']:<8} {r['kind']:<23} "
                      f"filled={r['filled']}/{r['amount']} avg={r['average_price']} "
                      f"fee={r['fee']}  {r['event_id']}")
        else:
            counts = await store.counts()
            open_orders = await store.open_orders()
            print("events by kind: " + ", ".join(f"{k}={n}" for k, n in sorted(counts.items())))
            print(f"orders accepted without a terminal event: {len(open_orders)}")
            for cid in open_orders[:20]:
                print(f"  {cid}")
        return 0
    finally:
        await store.close()
