"""``make demo``: a worker process on the paper exchange, sample orders, their events.
``make demo EXCHANGE=binance|bybit`` sends the same orders through the real ccxt client
to local servers speaking that exchange's API (``demo_venues``).

Runs against the real RabbitMQ at AMQP_URL, under its own topology prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO

from schemas import CancelDone, CancelOrder, Event, OrderRejected, PlaceOrder
from schemas.commands import Command
from schemas.events import event_kind
from worker.broker.deadletters import drain_dead_letters
from worker.broker.topology import delete
from worker.client import OrderClient
from worker.lab.demo_venues import venue

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PREFIX = f"orderworker-demo-{uuid.uuid4().hex[:6]}"
VENUE = os.environ.get("EXCHANGE") or "paper"


def _cmd(n: int, **kw: object) -> PlaceOrder:
    base: dict[str, object] = {"command_id": f"demo-{n}", "account": "alice",
                               "exchange": VENUE, "created_at": datetime.now(UTC)}
    return PlaceOrder(**{**base, **kw})  # type: ignore[arg-type]


EXPECTED = {"demo-1": "order_filled", "demo-2": "order_filled", "demo-3": "order_filled",
            "demo-4": "order_canceled", "demo-5": "order_rejected", "demo-6": "order_canceled",
            "demo-7": "cancel_done", "demo-8": "order_rejected"}
"""The outcome each sample command must end with (the demo fails otherwise)."""


def samples() -> list[tuple[str, Command | bytes]]:
    now = datetime.now(UTC)
    return [
        ("market buy 0.05 BTC", _cmd(1, symbol="BTC/USDT", side="buy", type="market",
                                     amount="0.05")),
        ("limit sell 2 SOL below market (fills)", _cmd(2, symbol="SOL/USDT", side="sell",
                                                       type="limit", amount="2", price="149")),
        ("market buy 1 BTC on a thin book (partial fills)",
         _cmd(3, exchange=f"{VENUE}_thin", symbol="BTC/USDT", side="buy", type="market",
              amount="1", timeout_s=10)),
        ("limit buy 1 ETH far below market, 2 s timeout (canceled)",
         _cmd(4, symbol="ETH/USDT", side="buy", type="limit", amount="1", price="2800",
              timeout_s=2)),
        ("market buy 100 BTC (risk: max notional)",
         _cmd(5, symbol="BTC/USDT", side="buy", type="market", amount="100")),
        ("resting limit buy 0.1 BTC, good till canceled", _cmd(
            6, symbol="BTC/USDT", side="buy", type="limit", amount="0.1", price="50000")),
        ("cancel of demo-6 (its own outcome: cancel_done)", CancelOrder(
            command_id="demo-7", account="alice", exchange=VENUE,
            target_command_id="demo-6", created_at=now)),
        ("negative amount (invalid: rejected + dead-lettered)",
         json.dumps({"kind": "place_order", "command_id": "demo-8", "account": "alice",
                     "exchange": VENUE, "symbol": "BTC/USDT", "side": "buy",
                     "type": "market", "amount": "-1",
                     "created_at": now.isoformat()}).encode()),
        ("garbage bytes (dead-lettered)", b"\xff\xfenot json"),
    ]


def _line(e: Event) -> str:
    extra = ""
    if isinstance(e, OrderRejected):
        extra = f" reason={e.reason.value}: {e.message}"
    elif isinstance(e, CancelDone):
        extra = f" order {e.target_command_id} is {e.order_status}"
    avg = f" avg={e.average_price:.2f}" if e.average_price else ""
    return (f"  {e.command_id:<7} {event_kind(e):<23} seq={e.sequence:<8} "
            f"filled={_num(e.filled)}/{_num(e.amount)}{avg}{extra}")


def _num(d: Decimal) -> str:
    return format(d.normalize(), "f")


async def show_dead_letters(client: OrderClient) -> None:
    """Print (and remove) what the worker parked in the dead-letter queue."""
    print(f"dead-letter queue {client.names.dead_queue}:")
    for body, reason in await drain_dead_letters(AMQP_URL, client.names):
        print(f"  {body[:40]!r:<44} reason={reason}")


def _open_log(path: str) -> IO[str]:
    return open(path, "w")


async def main() -> int:
    async with venue(VENUE) as (exchanges, credentials):
        return await run(exchanges, credentials)


async def run(exchanges: dict[str, object], credentials: dict[str, str]) -> int:
    env = dict(os.environ, OW_PREFIX=PREFIX, OW_EXCHANGES=json.dumps(exchanges),
               OW_LOG_JSON="true", OW_TRACK_POLL_S="0.1", AMQP_URL=AMQP_URL, **credentials)
    log_path = f"/tmp/{PREFIX}.log"
    print(f"broker {AMQP_URL}  topology prefix {PREFIX}  worker log {log_path}")
    with _open_log(log_path) as log_file:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "run", env=env, stderr=log_file)
    try:
        async with OrderClient(AMQP_URL, prefix=PREFIX) as client:
            await client.wait_for_workers(60)
            stream: asyncio.Queue[Event] = asyncio.Queue()
            client.listeners.append(stream)
            ids = []
            for title, item in samples():
                print(f"-> {title}")
                if isinstance(item, bytes):
                    await client.publish_raw(item, "alice")
                else:
                    await client.send(item)
                    ids.append(item.command_id)
                if title.startswith("resting"):
                    await asyncio.sleep(1.0)
            ids.append("demo-8")
            print("\nevents (as published by the worker, confirmed by RabbitMQ):")
            deadline = time.monotonic() + 60
            done: dict[str, str] = {}
            while not set(ids) <= done.keys() and time.monotonic() < deadline:
                try:
                    e = await asyncio.wait_for(stream.get(), 1.0)
                except TimeoutError:
                    continue
                print(_line(e))
                if e.sequence >= 1_000_001:
                    done[e.command_id] = event_kind(e)
            missing = [i for i in ids if i not in done]
            print(f"\n{len(done)} commands reached their outcome; missing: {missing or 'none'}")
            wrong = {i: k for i, k in done.items() if EXPECTED.get(i) not in (None, k)}
            for i, k in wrong.items():
                print(f"NOT AS EXPECTED: {i} ended {k}, expected {EXPECTED[i]}")
            await show_dead_letters(client)
            worker.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(worker.wait(), 40)
            print(f"worker stopped on SIGTERM (exit {code})")
            assert client._channel is not None
            await delete(client._channel, client.names)
        return 1 if missing or wrong or code != 0 else 0
    finally:
        if worker.returncode is None:
            worker.kill()
