"""``make bench``: throughput and latency of the worker against a bare aio-pika pipeline.

One run measures, on the real broker, in separate processes:
(a) the bare pipeline (worker.lab.bench_bare) with the same persistence settings,
(b) the worker on the paper exchange, with 1 and with 2 worker processes.
Each gets the same N market orders over many accounts; throughput is N over
the time from the first publish to the last filled event, latency is command
``created_at`` -> filled event received (all N are published at once, so it
includes queueing). The pipelines run in interleaved rounds and the medians
are reported, with the CPU time each pipeline's processes spent per order.
Prints the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

from schemas import PlaceOrder
from schemas.events import OrderFilled
from worker.broker.topology import delete
from worker.client import OrderClient

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def _pipeline(module: list[str], processes: int, orders: int,
                    accounts: int) -> dict[str, float]:
    prefix = f"owbench-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, AMQP_URL=AMQP_URL, OW_PREFIX=prefix, OW_LOG_LEVEL="WARNING",
               OW_WORKER_COUNT=str(processes), OW_STANDBY_DELAY_S="0.5")
    async with OrderClient(AMQP_URL, prefix=prefix) as client:
        filled_at: dict[str, float] = {}
        done = asyncio.Event()

        queue: asyncio.Queue = asyncio.Queue()  # type: ignore[type-arg]
        client.listeners.append(queue)

        async def collect() -> None:
            while len(filled_at) < orders:
                event = await queue.get()
                if isinstance(event, OrderFilled):
                    filled_at[event.command_id] = time.time()
            done.set()

        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", *module, env=dict(env, OW_WORKER_INDEX=str(i)))
            for i in range(processes)]
        await client.wait_for_workers(60)  # processes up and consuming
        collector = asyncio.create_task(collect())
        cmds = [PlaceOrder(command_id=f"b-{i}", account=f"acct{i % accounts}", exchange="paper",
                           symbol="BTC/USDT", side="buy", type="market", amount="0.001",
                           created_at=datetime.now(UTC)) for i in range(orders)]
        start = time.time()
        created: dict[str, float] = {}
        for i in range(0, orders, 200):
            batch = cmds[i:i + 200]
            now = time.time()
            for c in batch:
                created[c.command_id] = now
            await asyncio.gather(*(client.send(c) for c in batch))
        await asyncio.wait_for(done.wait(), 300)
        elapsed = max(filled_at.values()) - start
        collector.cancel()
        cpu_s = sum(cpu_seconds(p.pid) for p in procs)
        for p in procs:
            p.terminate()
        for p in procs:
            await p.wait()
        assert client._channel is not None
        await delete(client._channel, client.names)
    lat = sorted(filled_at[c] - created[c] for c in created)
    return {"orders_per_s": orders / elapsed, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "cpu_ms_per_order": cpu_s / orders * 1000}


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


async def stop_and_clean(proc: asyncio.subprocess.Process, client: OrderClient) -> None:
    """End a bench's worker process (it may have exited) and delete its topology."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    await proc.wait()
    assert client._channel is not None
    await delete(client._channel, client.names)


PIPELINES = {
    "bare aio-pika pipeline": (["worker.lab.bench_bare"], 1),
    "worker x1 (paper)": (["worker", "run"], 1),
    "worker x2 (paper)": (["worker", "run"], 2),
}


async def run(orders: int, accounts: int, rounds: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in PIPELINES}
    for _ in range(rounds):
        for name, (module, processes) in PIPELINES.items():
            samples[name].append(await _pipeline(module, processes, orders, accounts))
    return {name: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
            for name, runs in samples.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--accounts", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    results = asyncio.run(run(args.orders, args.accounts, args.rounds))
    print(f"{args.orders} market orders over {args.accounts} accounts, real broker {AMQP_URL}, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'pipeline':<26}{'orders/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'cpu ms/order':>14}")
    for name, r in results.items():
        print(f"{name:<26}{r['orders_per_s']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
              f"{r['cpu_ms_per_order']:>14.2f}")
    bare = results["bare aio-pika pipeline"]["orders_per_s"]
    one = results["worker x1 (paper)"]["orders_per_s"]
    two = results["worker x2 (paper)"]["orders_per_s"]
    print(f"ratio worker x1 / bare pipeline: {one / bare:.2f}  (target >= 0.80)")
    print(f"ratio worker x2 / worker x1:     {two / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
