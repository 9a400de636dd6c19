"""``make bench-stream``: order stream vs REST-only following, measured in one run.

Per mode (REST-only, then ``"stream": true``): a fresh Binance simulator (spot, its
WebSocket API user-data stream) and one real worker in this process (driver
"binance" through ccxt/ccxt.pro, default ``OW_TRACK_POLL_S`` 1 s and
``OW_STREAM_RECONCILE_S`` 30 s) on a private topology prefix. One account places
100 resting GTC buy limits far below the market. Then:

1. REST requests/minute: the simulator's request counters over a fixed window,
   scaled to a minute, with the 100 orders resting;
2. fill -> event: one order at a time, the simulator's price is moved across it
   (the fill happens inside that call) and straight back (``_fill_one``); the time from there until
   the OrderFilled event reaches a client over the broker. Fills are spaced by a
   random 0.2-0.6 s so they fall anywhere in the poll interval.

Prints median and p99 per mode and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from schemas import PlaceOrder
from schemas.events import OrderAccepted, OrderFilled
from worker.app import Worker
from worker.client import OrderClient
from worker.lab.sim.binance import BinanceSim
from worker.settings import load_settings

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
KEY, SECRET = "bench-key-0002", "bench-secret-0002"
ACCOUNT = "bench2"
SYMBOL = "BTC/USDT"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fill_one(sim: BinanceSim, price: Decimal) -> None:
    """Fill exactly the resting buy at ``price``: the ask (mid + 1 bps) half a unit under
    it for one match, then the mid back where it was, with no walk step in between."""
    book = sim.books[KEY]
    line = book._book(SYMBOL)  # the paper book's internals: lab code only
    saved = line.price
    line.price = (price - Decimal("0.5")) / Decimal("1.0001")
    book._match(line)
    line.price = saved


async def measure(stream: bool, resting: int, fills: int, window_s: float) -> dict[str, Any]:
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    exchanges = {"binance": {"driver": "binance", "live": True, "rate_limit": False,
                             "urls": {"rest": url, "ws": url.replace("http", "ws")},
                             "stream": stream}}
    env = {"AMQP_URL": AMQP_URL, "OW_PREFIX": f"owbstream-{uuid.uuid4().hex[:6]}",
           "OW_LOG_LEVEL": "WARNING", "OW_LOG_JSON": "false",
           "OW_EXCHANGES": json.dumps(exchanges)}
    os.environ[f"OW_CRED_{ACCOUNT.upper()}_BINANCE_API_KEY"] = KEY
    os.environ[f"OW_CRED_{ACCOUNT.upper()}_BINANCE_SECRET"] = SECRET
    settings = load_settings(env)
    worker = Worker(settings)
    await worker.start()
    try:
        async with OrderClient(AMQP_URL, prefix=settings.prefix,
                               shards=settings.shards) as client:
            events: asyncio.Queue[Any] = asyncio.Queue()
            client.listeners.append(events)
            prices = [Decimal(20000 + i) for i in range(resting)]
            cmds = {f"rest-{i}": p for i, p in enumerate(prices)}
            await asyncio.gather(*(client.send(PlaceOrder(
                command_id=c, account=ACCOUNT, exchange="binance", symbol=SYMBOL, side="buy",
                type="limit", amount="0.001", price=str(p), created_at=datetime.now(UTC)))
                for c, p in cmds.items()))
            accepted: set[str] = set()
            while len(accepted) < resting:
                event = await asyncio.wait_for(events.get(), 120)
                if isinstance(event, OrderAccepted):
                    accepted.add(event.command_id)
            await asyncio.sleep(3)  # the follower (and the stream) settle in
            before = sim.requests
            await asyncio.sleep(window_s)
            per_min = (sim.requests - before) * 60.0 / window_s
            by_price = {p: c for c, p in cmds.items()}
            latencies: list[float] = []
            before_fills = sim.requests
            for p in sorted(prices, reverse=True)[:fills]:
                await asyncio.sleep(random.uniform(0.2, 0.6))
                while not events.empty():
                    events.get_nowait()
                t0 = time.monotonic()
                _fill_one(sim, p)
                want = by_price[p]
                while True:
                    event = await asyncio.wait_for(events.get(), 30)
                    if isinstance(event, OrderFilled) and event.command_id == want:
                        latencies.append(time.monotonic() - t0)
                        break
            per_fill = (sim.requests - before_fills) / fills
    finally:
        await worker.stop()
        await sim.stop()
        from worker.broker.connect import connect
        from worker.broker.topology import Names, delete

        conn = await connect(AMQP_URL)
        async with conn:
            await delete(await conn.channel(), Names(settings.prefix, settings.shards))
    return {"per_min": per_min, "p50": statistics.median(latencies),
            "p99": _pct(latencies, 0.99), "per_fill": per_fill, "n": len(latencies)}


async def run(resting: int, fills: int, window_s: float) -> dict[str, dict[str, Any]]:
    out = {}
    for mode in ("rest", "stream"):
        out[mode] = await measure(mode == "stream", resting, fills, window_s)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--resting", type=int, default=100)
    p.add_argument("--fills", type=int, default=50)
    p.add_argument("--window-s", type=float, default=60.0)
    args = p.parse_args()
    rows = asyncio.run(run(args.resting, args.fills, args.window_s))
    print(f"Binance simulator (spot), one account, {args.resting} resting orders, "
          f"OW_TRACK_POLL_S=1, OW_STREAM_RECONCILE_S=30; fill -> OrderFilled at a client "
          f"over {args.fills} fills; REST requests over {args.window_s:.0f} s scaled to a "
          "minute")
    print(f"{'mode':>10}{'p50 ms':>10}{'p99 ms':>10}{'REST req/min':>14}{'req per fill':>14}")
    for mode, r in rows.items():
        print(f"{mode:>10}{r['p50'] * 1000:>10.1f}{r['p99'] * 1000:>10.1f}"
              f"{r['per_min']:>14.1f}{r['per_fill']:>14.1f}")
    rest, stream = rows["rest"], rows["stream"]
    print(f"stream/REST: p50 {stream['p50'] / rest['p50']:.3f}, "
          f"p99 {stream['p99'] / rest['p99']:.3f}, "
          f"requests/min {stream['per_min'] / max(rest['per_min'], 1e-9):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
