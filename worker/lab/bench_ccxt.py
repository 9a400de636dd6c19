"""``make bench`` (real path): the worker against a bare ccxt create loop, one run.

Both place the same market orders (``--orders`` over ``--accounts`` accounts, one
API key each) on the project's Binance simulator (``worker.lab.sim.binance``, its own
process, answering with Binance's usage headers) through the real ccxt client:

* bare ccxt loop: one ccxt client per account, each creating its share of the orders
  one after another (32 accounts: 32 concurrent creates), no broker, no checks; it
  runs before and after the worker, and the ratio is against the mean of the two;
* worker: ``python -m worker run`` with default settings, commands through the broker,
  events back; throughput is orders over first publish -> last filled event.

Both sides, and the bench's own publisher, run on the same event loop (``--loop``,
default uvloop like the worker's ``OW_EVENT_LOOP``), so the loop is not what differs.
The bench listens to the outcome events only (filled, rejected, failed) and reads their
kind and one header, so its own CPU takes as little as it can from the worker's.

Each side first places one order per account (warm-up: markets, balances, prices),
then the measured run. Printed per side: orders/s, p50/p99 of publish -> filled (bare:
start -> create answered), HTTP requests and Binance request weight per order as the
simulator counted them, CPU ms per order of the side's process. Ratios at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from schemas import PlaceOrder, client_order_id
from worker.cli import run_loop
from worker.client import OrderClient
from worker.lab.bench import cpu_seconds, stop_and_clean

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AMOUNT = "0.001"
LOOP = ["uvloop"]  # --loop: the event loop of every side


def _keys(accounts: int) -> list[tuple[str, str, str]]:
    return [(f"acct{i}", f"bench-key-{i:04d}", f"bench-secret-{i:04d}") for i in range(accounts)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_admin/stats") as r:
        body: dict[str, Any] = await r.json()
    body.pop("orders_per_client_id", None)
    return body


def _summary(lat: list[float], orders: int, elapsed: float, cpu_s: float,
             before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    lat = sorted(lat)
    return {"orders_per_s": orders / elapsed, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
            "requests_per_order": (after["requests"] - before["requests"]) / orders,
            "weight_per_order": (after["weight"] - before["weight"]) / orders,
            "cpu_ms_per_order": cpu_s / orders * 1000}


# -- bare ccxt loop (runs in its own process: ``bench_ccxt bare``) ----------------------
async def _bare(url: str, orders: int, accounts: int) -> dict[str, float]:
    from worker.exchange.binance import BinanceExchange
    from worker.exchange.credentials import Credentials
    from worker.settings import ExchangeConfig

    cfg = ExchangeConfig(driver="binance", live=True, urls={"rest": url}, rate_limit=False)
    clients = []
    for _, key, secret in _keys(accounts):
        client = BinanceExchange("binance", cfg, Credentials(key, secret)).build_client()
        del client.on_rest_response  # the plain ccxt client, none of our hooks
        await client.load_markets()
        clients.append(client)
    run = uuid.uuid4().hex[:6]

    async def loop(k: int, client: Any, n: int, lat: list[float], t0: float) -> None:
        for i in range(n):
            await client.create_order("BTC/USDT", "market", "buy", AMOUNT, None, {
                "newClientOrderId": client_order_id(f"acct{k}", f"bare-{run}-{k}-{i}"),
                "newOrderRespType": "FULL"})
            lat.append(time.monotonic() - t0)

    await asyncio.gather(*(loop(k, c, 1, [], time.monotonic()) for k, c in enumerate(clients)))
    before = await _stats(url)
    cpu0, lat = time.process_time(), list[float]()
    t0 = time.monotonic()
    share = [orders // accounts + (1 if k < orders % accounts else 0) for k in range(accounts)]
    await asyncio.gather(*(loop(k, c, share[k], lat, t0) for k, c in enumerate(clients)))
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    after = await _stats(url)
    for c in clients:
        await c.close()
    return _summary(lat, orders, elapsed, cpu, before, after)


# -- the worker -----------------------------------------------------------------------
async def _worker(url: str, orders: int, accounts: int) -> dict[str, float]:
    prefix = f"owbench-{uuid.uuid4().hex[:6]}"
    keys = _keys(accounts)
    # the bench's publisher is OrderClient, which marks re-sends: the one-request path
    env = dict(os.environ, AMQP_URL=AMQP_URL, OW_PREFIX=prefix, OW_LOG_LEVEL="WARNING",
               OW_LOOKUP_BEFORE_CREATE=os.environ.get("OW_LOOKUP_BEFORE_CREATE", "when_needed"),
               OW_EVENT_LOOP=LOOP[0],
               OW_EXCHANGES=json.dumps({"binance": {
                   "driver": "binance", "live": True, "urls": {"rest": url},
                   "rate_limit": os.environ.get("BENCH_RATE_LIMIT", "1") == "1"}}))
    for account, key, secret in keys:
        env[f"OW_CRED_{account.upper()}_BINANCE_API_KEY"] = key
        env[f"OW_CRED_{account.upper()}_BINANCE_SECRET"] = secret
    async with OrderClient(AMQP_URL, prefix=prefix, watch="") as client:
        filled: dict[str, float] = {}
        left: set[str] = set()
        done, refused = asyncio.Event(), list[bytes]()

        async def on_event(message: AbstractIncomingMessage) -> None:
            # bound to the outcomes only; nothing is decoded but the kind and one header
            if message.type != "order_filled":
                refused.append(message.body)
                done.set()
                return
            command_id = str((message.headers or {}).get("command_id"))
            filled[command_id] = time.time()
            left.discard(command_id)
            if not left:
                done.set()

        async def listen() -> None:
            assert client._conn is not None
            channel = await client._conn.channel()
            events = await channel.get_exchange(f"{prefix}.events")
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for kind in ("order_filled", "order_rejected", "order_failed"):
                await queue.bind(events, f"order.*.*.{kind}")
            await queue.consume(on_event, no_ack=True)

        async def batch(cmds: list[PlaceOrder]) -> dict[str, float]:
            done.clear()
            left.update(c.command_id for c in cmds)
            sent: dict[str, float] = {}
            for i in range(0, len(cmds), 200):
                now = time.time()
                for c in cmds[i:i + 200]:
                    sent[c.command_id] = now
                await asyncio.gather(*(client.send(c) for c in cmds[i:i + 200]))
            await asyncio.wait_for(done.wait(), 300)
            if refused:
                raise SystemExit(f"bench order refused: {refused[0]!r}")
            return sent

        def cmds(tag: str, n: int) -> list[PlaceOrder]:
            return [PlaceOrder(command_id=f"{tag}-{i}", account=f"acct{i % accounts}",
                               exchange="binance", symbol="BTC/USDT", side="buy",
                               type="market", amount=AMOUNT, created_at=datetime.now(UTC))
                    for i in range(n)]

        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", "run",
                                                    env=env)
        try:
            # commands created within max_clock_skew_s of the worker's start are looked
            # up first (worker.orders.lookup): the measured run comes after that
            await client.wait_for_workers()
            await listen()
            await batch(cmds("warm", accounts))  # answered: the worker is up
            await asyncio.sleep(5.5)
            before, cpu0 = await _stats(url), cpu_seconds(proc.pid)
            measured = cmds("run", orders)
            start = time.time()
            sent = await batch(measured)
            elapsed = max(filled[c.command_id] for c in measured) - start
            cpu = cpu_seconds(proc.pid) - cpu0
            after = await _stats(url)
        finally:
            await stop_and_clean(proc, client)
    lat = [filled[c] - sent[c] for c in sent]
    return _summary(lat, orders, elapsed, cpu, before, after)


async def _sim(accounts: int) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    args = ["--port", str(port)]
    for _, key, secret in _keys(accounts):
        args += ["--key", key, "--secret", secret]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.lab.sim.binance", *args, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    await proc.stdout.readline()  # "binance simulator on ..."
    return proc, f"http://127.0.0.1:{port}"


async def _bare_run(orders: int, accounts: int) -> dict[str, float]:
    sim, url = await _sim(accounts)
    try:
        bare = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.lab.bench_ccxt", "bare", "--url", url,
            "--orders", str(orders), "--accounts", str(accounts), "--loop", LOOP[0],
            stdout=asyncio.subprocess.PIPE)
        out, _ = await bare.communicate()
        result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
        return result
    finally:
        sim.terminate()
        await sim.wait()


async def run(orders: int, accounts: int) -> dict[str, dict[str, float]]:
    """Each side gets a fresh simulator: Binance counts weight per IP and clock minute,
    so one side's use must not eat into the other's minute. The bare loop runs before
    and after the worker; the ratio is against the mean of the two, so a machine whose
    other load changes during the run moves both sides alike."""
    results: dict[str, dict[str, float]] = {}
    results["bare ccxt loop, before"] = await _bare_run(orders, accounts)
    sim, url = await _sim(accounts)
    try:
        results["worker (binance sim)"] = await _worker(url, orders, accounts)
    finally:
        sim.terminate()
        await sim.wait()
    results["bare ccxt loop, after"] = await _bare_run(orders, accounts)
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", nargs="?", default="compare", choices=["compare", "bare"])
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--accounts", type=int, default=32)
    p.add_argument("--url", default="")
    p.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"],
                   help="event loop of the bare loop, the worker and the bench's publisher")
    args = p.parse_args()
    LOOP[0] = args.loop
    if args.mode == "bare":
        print(json.dumps(run_loop(_bare(args.url, args.orders, args.accounts), args.loop)))
        return 0
    results = run_loop(run(args.orders, args.accounts), args.loop)
    print(f"{args.orders} market orders over {args.accounts} accounts, Binance simulator "
          f"through ccxt, real broker {AMQP_URL}, after one warm-up order per account, "
          f"{args.loop} event loop on every side")
    print(f"{'pipeline':<24}{'orders/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'req/order':>10}"
          f"{'weight/order':>13}{'cpu ms/order':>13}")
    for name, r in results.items():
        print(f"{name:<24}{r['orders_per_s']:>9.0f}{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}"
              f"{r['requests_per_order']:>10.2f}{r['weight_per_order']:>13.2f}"
              f"{r['cpu_ms_per_order']:>13.2f}")
    worker = results["worker (binance sim)"]
    bare_rate = statistics.mean(results[f"bare ccxt loop, {k}"]["orders_per_s"]
                                for k in ("before", "after"))
    print(f"ratio worker / bare ccxt loop (mean of before and after): "
          f"{worker['orders_per_s'] / bare_rate:.2f}"
          f"  (target >= 0.50); worker requests/order {worker['requests_per_order']:.2f} "
          f"(target 1), weight/order {worker['weight_per_order']:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
