"""``make bench`` (steady rate): tail latency of the worker against the bare aio-pika
pipeline at a fixed command rate on the paper exchange.

For each rate (default 300, 500, 800 commands/s) each pipeline gets ``--seconds`` of
market orders over ``--accounts`` accounts, sent every 10 ms in equal slices (paced,
not a burst). Latency is the slot a command was due to be sent -> its filled event
received (a late sender counts against the pipeline, no coordinated omission). The
first second is warm-up and not counted. Prints p50, p99 and max per pipeline and the
worker / bare ratios of p99 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas import PlaceOrder
from schemas.commands import encode_command
from schemas.events import OrderFilled
from worker.broker.topology import delete
from worker.client import OrderClient

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PIPELINES = {"bare": ["worker.lab.bench_bare"], "worker": ["worker", "run"]}
TICK_S = 0.01


async def paced(module: list[str], rate: int, seconds: float,
                accounts: int) -> dict[str, float]:
    prefix = f"owpaced-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, AMQP_URL=AMQP_URL, OW_PREFIX=prefix, OW_LOG_LEVEL="WARNING")
    async with OrderClient(AMQP_URL, prefix=prefix) as client:
        filled: dict[str, float] = {}
        queue: asyncio.Queue[Any] = asyncio.Queue()
        client.listeners.append(queue)
        total = int(rate * seconds)

        async def collect() -> None:
            while len(filled) < total:
                event = await queue.get()
                if isinstance(event, OrderFilled):
                    filled[event.command_id] = time.monotonic()

        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", *module, env=env)
        try:
            await client.wait_for_workers(60)
            await asyncio.sleep(2.0)
            now = datetime.now(UTC)  # built up front: the sender only publishes
            bodies = [(f"p-{i}", f"acct{i % accounts}", encode_command(PlaceOrder(
                command_id=f"p-{i}", account=f"acct{i % accounts}", exchange="paper",
                symbol="BTC/USDT", side="buy", type="market", amount="0.001",
                created_at=now))) for i in range(total)]
            collector = asyncio.create_task(collect())
            due: dict[str, float] = {}
            sends: list[asyncio.Task[None]] = []
            start, n, tick = time.monotonic(), 0, 0
            while n < total:
                slot = start + tick * TICK_S
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tick += 1
                upto = min(total, int(rate * tick * TICK_S))
                for i in range(n, upto):
                    cid, account, body = bodies[i]
                    due[cid] = slot
                    sends.append(asyncio.create_task(client.publish_raw(body, account, cid)))
                n = upto
            await asyncio.gather(*sends)
            lag = time.monotonic() - start - seconds
            if lag > 0.5:
                print(f"  ({' '.join(module)} at {rate}/s: the sender finished {lag:.1f}s "
                      "late: this machine cannot publish at that rate now)", flush=True)
            await asyncio.wait_for(collector, 120)
        finally:
            proc.terminate()
            await proc.wait()
            assert client._channel is not None
            await delete(client._channel, client.names)
    warm = start + 1.0
    lat = sorted(filled[c] - t for c, t in due.items() if t >= warm)
    return {"p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
            "max_ms": lat[-1] * 1000}


async def run(rates: list[int], seconds: float, accounts: int
              ) -> dict[int, dict[str, dict[str, float]]]:
    out: dict[int, dict[str, dict[str, float]]] = {}
    for rate in rates:
        out[rate] = {name: await paced(module, rate, seconds, accounts)
                     for name, module in PIPELINES.items()}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rates", default="300,500,800")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--accounts", type=int, default=64)
    args = p.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    results = asyncio.run(run(rates, args.seconds, args.accounts))
    print(f"steady rate on paper, {args.seconds:.0f}s per run (first second not counted), "
          f"{args.accounts} accounts, real broker {AMQP_URL}")
    print(f"{'rate/s':>7} {'pipeline':<8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for rate, by in results.items():
        for name, r in by.items():
            print(f"{rate:>7} {name:<8}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}")
        w, b = by["worker"], by["bare"]
        print(f"{rate:>7} ratio worker/bare: p99 {w['p99_ms'] / b['p99_ms']:.2f}  "
              f"max {w['max_ms'] / b['max_ms']:.2f}")
    print("targets: at 800/s p99 ratio <= 1.5; at 500/s max ratio <= 1.5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
