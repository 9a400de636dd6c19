"""``make bench`` (steady rate): tail latency of the worker against the bare aio-pika
pipeline at a fixed command rate on the paper exchange.

For each rate (default 300, 500, 800 commands/s) each pipeline gets ``--seconds`` of
market orders over ``--accounts`` accounts, sent every 10 ms in equal slices (paced,
not a burst). Latency is the slot a command was due to be sent -> its filled event
received (a late sender counts against the pipeline, no coordinated omission). The
first second is warm-up and not counted. The sender is a process of its own (so
collecting events does not delay sending); the collector binds to the filled events
only and reads one header of each; everything runs on one event loop (``--loop``).
Prints p50, p99 and max per pipeline and the worker / bare ratios of p99 and max.
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

from aio_pika.abc import AbstractIncomingMessage

from schemas import PlaceOrder
from schemas.commands import encode_command
from worker.cli import run_loop
from worker.client import OrderClient
from worker.lab.bench import cpu_seconds, stop_and_clean

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PIPELINES = {"bare": ["worker.lab.bench_bare"], "worker": ["worker", "run"],
             "base": ["base"]}
TICK_S = 0.01
LOOP = ["uvloop"]  # --loop
BASE_DIR = [""]  # --base: the "base" pipeline is the worker of that source tree
BROKER_PID = [0]  # --broker-pid: also count the broker's CPU per command (0: not)


def _usage(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds, voluntary context switches) of process ``pid``."""
    cpu = cpu_seconds(pid)
    with open(f"/proc/{pid}/status") as f:
        switches = next(int(line.split()[1]) for line in f
                        if line.startswith("voluntary_ctxt_switches"))
    return cpu, switches


def _ticks(rate: int, total: int) -> list[int]:
    """The 10 ms tick (1-based) in which each command is due."""
    out, n, tick = [], 0, 0
    while n < total:
        tick += 1
        upto = min(total, int(rate * tick * TICK_S))
        out += [tick] * (upto - n)
        n = upto
    return out


async def send(prefix: str, rate: int, seconds: float, accounts: int) -> None:
    """The load generator (``bench_paced send``, its own process): publishes the commands
    on schedule, each confirmed, and prints the schedule's start (``time.monotonic``, one
    clock for every process of this machine) and how late it finished."""
    total = int(rate * seconds)
    now = datetime.now(UTC)  # built up front: the sender only publishes
    bodies = [(f"p-{i}", f"acct{i % accounts}", encode_command(PlaceOrder(
        command_id=f"p-{i}", account=f"acct{i % accounts}", exchange="paper",
        symbol="BTC/USDT", side="buy", type="market", amount="0.001",
        created_at=now))) for i in range(total)]
    ticks = _ticks(rate, total)
    async with OrderClient(AMQP_URL, prefix=prefix, watch="") as client:
        await client.wait_for_topology(30)
        sends: list[asyncio.Task[None]] = []
        start = time.monotonic() + 0.05
        print(json.dumps({"start": start}), flush=True)
        i = 0
        while i < total:
            slot = start + ticks[i] * TICK_S
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            while i < total and start + ticks[i] * TICK_S <= slot:
                cid, account, body = bodies[i]
                sends.append(asyncio.create_task(client.publish_raw(body, account, cid)))
                i += 1
        await asyncio.gather(*sends)
        print(json.dumps({"lag": time.monotonic() - start - seconds}), flush=True)


async def paced(module: list[str], rate: int, seconds: float,
                accounts: int) -> dict[str, float]:
    prefix = f"owpaced-{uuid.uuid4().hex[:6]}"
    # as bench_ccxt: the lookup before a create only where an earlier attempt is possible
    env = dict(os.environ, AMQP_URL=AMQP_URL, OW_PREFIX=prefix, OW_LOG_LEVEL="WARNING",
               OW_EVENT_LOOP=LOOP[0], OW_LOOKUP_BEFORE_CREATE=os.environ.get(
                   "OW_LOOKUP_BEFORE_CREATE", "when_needed"))
    total = int(rate * seconds)
    filled: dict[str, float] = {}
    done = asyncio.Event()

    async def on_filled(message: AbstractIncomingMessage) -> None:
        # only the filled events are bound here; nothing is decoded but one header
        filled[str((message.headers or {}).get("command_id"))] = time.monotonic()
        if len(filled) >= total:
            done.set()

    async with OrderClient(AMQP_URL, prefix=prefix, watch="") as client:
        cwd = None
        if module == ["base"]:  # the worker of another checkout (before/after runs)
            module, cwd = ["worker", "run"], BASE_DIR[0]
            env["PYTHONPATH"] = BASE_DIR[0]
        spawned = time.monotonic()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", *module, env=env,
                                                    cwd=cwd)
        try:
            await client.wait_for_workers(60)
            assert client._conn is not None
            channel = await client._conn.channel()
            events = await channel.get_exchange(f"{prefix}.events")
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(events, "order.*.*.order_filled")
            await queue.consume(on_filled, no_ack=True)
            # commands created within max_clock_skew_s of the worker's start may be older
            # than it, so it would look each up first (worker.orders.lookup): start later
            skew = float(os.environ.get("OW_MAX_CLOCK_SKEW_S", "5"))
            await asyncio.sleep(max(2.0, spawned + skew + 0.5 - time.monotonic()))
            sender = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker.lab.bench_paced", "send", "--prefix", prefix,
                "--rates", str(rate), "--seconds", str(seconds), "--accounts", str(accounts),
                "--loop", LOOP[0], stdout=asyncio.subprocess.PIPE)
            assert sender.stdout is not None
            start = json.loads(await sender.stdout.readline())["start"]
            before = _usage(proc.pid)
            broker_before = _usage(BROKER_PID[0]) if BROKER_PID[0] else (0.0, 0)
            lag = json.loads(await sender.stdout.readline())["lag"]
            await sender.wait()
            if lag > 0.5:
                print(f"  ({' '.join(module)} at {rate}/s: the sender finished {lag:.1f}s "
                      "late: this machine cannot publish at that rate now)", flush=True)
            await asyncio.wait_for(done.wait(), 120)
            after = _usage(proc.pid)
            broker_after = _usage(BROKER_PID[0]) if BROKER_PID[0] else (0.0, 0)
        finally:
            await stop_and_clean(proc, client)
    warm = start + 1.0
    due = {f"p-{i}": start + t * TICK_S for i, t in enumerate(_ticks(rate, total))}
    lat = sorted(filled[c] - t for c, t in due.items() if t >= warm) or sorted(
        filled[c] - t for c, t in due.items())  # a burst (all due at once): count all
    return {"p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] * 1000,
            "max_ms": lat[-1] * 1000,
            "cpu_ms": (after[0] - before[0]) * 1000 / total,
            "wakeups": (after[1] - before[1]) / total,
            "broker_ms": (broker_after[0] - broker_before[0]) * 1000 / total}


async def run(rates: list[int], seconds: float, accounts: int, pipelines: list[str]
              ) -> dict[int, dict[str, dict[str, float]]]:
    out: dict[int, dict[str, dict[str, float]]] = {}
    for rate in rates:
        out[rate] = {name: await paced(PIPELINES[name], rate, seconds, accounts)
                     for name in pipelines}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rates", default="300,500,800")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--accounts", type=int, default=64)
    p.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"],
                   help="event loop of both pipelines, the sender and the collector")
    p.add_argument("mode", nargs="?", default="compare", choices=["compare", "send"])
    p.add_argument("--prefix", default="")
    p.add_argument("--base", default="",
                   help="source tree whose worker runs as pipeline 'base' (before/after)")
    p.add_argument("--broker-pid", type=int, default=0,
                   help="also print the broker's CPU ms per command (its OS pid)")
    p.add_argument("--pipelines", default="bare,worker",
                   help="which to run, in this order (comma separated)")
    args = p.parse_args()
    LOOP[0] = args.loop
    BROKER_PID[0] = args.broker_pid
    BASE_DIR[0] = os.path.abspath(args.base) if args.base else ""
    rates = [int(r) for r in args.rates.split(",")]
    if args.mode == "send":
        run_loop(send(args.prefix, rates[0], args.seconds, args.accounts), args.loop)
        return 0
    results = run_loop(run(rates, args.seconds, args.accounts,
                                  args.pipelines.split(",")), args.loop)
    print(f"steady rate on paper, {args.seconds:.0f}s per run (first second not counted), "
          f"{args.accounts} accounts, real broker {AMQP_URL}, {args.loop} event loop, "
          "sender in its own process")
    print(f"{'rate/s':>7} {'pipeline':<8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'CPU ms/cmd':>11}{'sleeps/cmd':>11}{'broker ms':>10}")
    for rate, by in results.items():
        for name, r in by.items():
            print(f"{rate:>7} {name:<8}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
                  f"{r['cpu_ms']:>11.2f}{r['wakeups']:>11.2f}{r['broker_ms']:>10.2f}")
        if "worker" not in by or "bare" not in by:
            continue
        w, b = by["worker"], by["bare"]
        print(f"{rate:>7} ratio worker/bare: p99 {w['p99_ms'] / b['p99_ms']:.2f}  "
              f"max {w['max_ms'] / b['max_ms']:.2f}")
    print("targets: at 800/s p99 ratio <= 1.5; at 500/s max ratio <= 1.5")
    return 0


if __name__ == "__main__":
    sys.exit(main())
