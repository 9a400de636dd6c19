"""``make bench-tracking``: exchange requests per minute while one account has 1, 100
and 1,000 resting orders.

Per N: a fresh Binance simulator (worker.lab.sim.binance) and one real worker in
this process (driver "binance" through ccxt, no client-side rate limit,
``OW_TRACK_POLL_S=1``) on a private topology prefix. N resting GTC buy limits far
below the market are published at once on ONE account; once all are accepted the
simulator's request counters are read over a fixed window and scaled to a
minute. The tracker lists open orders once per symbol per poll, so the rate
should stay flat as N grows. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

from schemas import PlaceOrder
from schemas.events import OrderAccepted
from worker.app import Worker
from worker.client import OrderClient
from worker.lab.sim.binance import BinanceSim
from worker.settings import load_settings

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
KEY, SECRET = "bench-key-0001", "bench-secret-0001"
ACCOUNT = "bench1"


async def measure(resting: int, window_s: float) -> tuple[float, dict[str, float], float]:
    """(requests/min, requests/min by endpoint, seconds until all were accepted)."""
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": url},
                             "rate_limit": False}}
    env = {"AMQP_URL": AMQP_URL, "OW_PREFIX": f"owbtrack-{uuid.uuid4().hex[:6]}",
           "OW_TRACK_POLL_S": "1", "OW_LOG_LEVEL": "WARNING", "OW_LOG_JSON": "false",
           "OW_EXCHANGES": json.dumps(exchanges)}
    os.environ[f"OW_CRED_{ACCOUNT.upper()}_BINANCE_API_KEY"] = KEY  # read from the process env
    os.environ[f"OW_CRED_{ACCOUNT.upper()}_BINANCE_SECRET"] = SECRET
    settings = load_settings(env)
    worker = Worker(settings)
    await worker.start()
    try:
        async with OrderClient(AMQP_URL, prefix=settings.prefix,
                               shards=settings.shards) as client:
            accepted: set[str] = set()
            all_in = asyncio.Event()
            events: asyncio.Queue = asyncio.Queue()  # type: ignore[type-arg]
            client.listeners.append(events)

            async def collect() -> None:
                while len(accepted) < resting:
                    event = await events.get()
                    if isinstance(event, OrderAccepted):
                        accepted.add(event.command_id)
                all_in.set()

            collector = asyncio.create_task(collect())
            cmds = [PlaceOrder(command_id=f"rest-{i}", account=ACCOUNT, exchange="binance",
                               symbol="BTC/USDT", side="buy", type="limit", amount="0.001",
                               price=str(20000 + i % 100), created_at=datetime.now(UTC))
                    for i in range(resting)]
            start = time.monotonic()
            for i in range(0, resting, 200):
                await asyncio.gather(*(client.send(c) for c in cmds[i:i + 200]))
            await asyncio.wait_for(all_in.wait(), 300)
            placing_s = time.monotonic() - start
            collector.cancel()
            await asyncio.sleep(2)  # let the follower settle into its steady rhythm
            before, total_before = dict(sim.by_endpoint), sim.requests
            await asyncio.sleep(window_s)
            after, total_after = dict(sim.by_endpoint), sim.requests
            open_now = len(await sim.open_client_ids())
            if open_now != resting:
                raise RuntimeError(f"expected {resting} resting orders, the simulator has "
                                   f"{open_now} open")
    finally:
        await worker.stop()
        await sim.stop()
        from worker.broker.connect import connect
        from worker.broker.topology import Names, delete

        conn = await connect(AMQP_URL)
        async with conn:
            await delete(await conn.channel(), Names(settings.prefix, settings.shards))
    scale = 60.0 / window_s
    by = {k: (after[k] - before.get(k, 0)) * scale for k in after
          if after[k] - before.get(k, 0)}
    return (total_after - total_before) * scale, by, placing_s


async def run(sizes: list[int], window_s: float) -> list[tuple[int, float, dict[str, float],
                                                               float]]:
    out = []
    for n in sizes:
        total, by, placing_s = await measure(n, window_s)
        out.append((n, total, by, placing_s))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1,100,1000")
    p.add_argument("--window-s", type=float, default=20.0)
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rows = asyncio.run(run(sizes, args.window_s))
    print(f"exchange requests per minute, one account, Binance simulator, "
          f"OW_TRACK_POLL_S=1, {args.window_s:.0f} s window scaled to a minute")
    print(f"{'resting orders':>15}{'req/min':>10}{'placed in s':>13}  by endpoint")
    for n, total, by, placing_s in rows:
        detail = ", ".join(f"{k} {v:.0f}" for k, v in sorted(by.items()))
        print(f"{n:>15}{total:>10.0f}{placing_s:>13.1f}  {detail}")
    base = rows[0][1] or 1.0
    print("ratio req/min vs the first row: "
          + ", ".join(f"N={n}: {total / base:.2f}" for n, total, _, _ in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
