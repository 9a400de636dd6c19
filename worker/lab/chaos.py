"""``make chaos``: many orders through several worker processes while everything breaks.

* worker subprocesses on the real broker, trading through ccxt on the local Binance
  simulator, which injects 5xx, 429, resets, accept-then-drop and latency;
* workers are SIGKILLed repeatedly (and crash at random steps) and restarted;
* the broker is restarted once (``rabbitmqctl stop_app/start_app``, local broker only).

Then it checks the exchange against the event stream and prints the counts:
orders per command (must be exactly 1 where placed), commands without a
terminal event (0), events lost (0), and duplicate deliveries (deduplicable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import PlaceOrder, client_order_id
from worker.broker.deadletters import drain_dead_letters
from worker.broker.topology import delete
from worker.client import OrderClient
from worker.crashpoints import POINTS
from worker.lab.chaos_events import EventLog
from worker.lab.sim.binance import BinanceSim

KEY, SECRET = "chaos-key-000001", "chaos-secret-000001"
FAULTS = [
    {"kind": "500", "group": "any", "rate": 0.01}, {"kind": "503", "group": "any", "rate": 0.005},
    {"kind": "429", "group": "any", "rate": 0.01}, {"kind": "reset", "group": "any", "rate": 0.005},
    {"kind": "accept_drop", "group": "create", "rate": 0.01},
    {"kind": "500_after", "group": "create", "rate": 0.01},
    {"kind": "latency", "group": "create", "rate": 0.005, "delay_s": 1.2},
]


@dataclass
class Chaos:
    amqp_url: str
    orders: int = 3000
    workers: int = 2
    accounts: int = 24
    rate_per_s: float = 80.0
    kill_every_s: float = 4.0
    broker_restart: bool = True
    crashes_expected: int = 12
    """Crash points fire with a rate that gives about this many crashes per run."""
    delivery_limit: int = 15
    """Every worker death bumps the delivery count of all its unacked messages, so the
    limit must exceed the deaths one message can witness (chaos kills often)."""
    seed: int = 7
    prefix: str = field(default_factory=lambda: f"owchaos-{uuid.uuid4().hex[:6]}")
    kills: int = 0
    crashes: int = 0
    broker_restarts: int = 0
    extra_faults: list[Callable[[Stage], Coroutine[None, None, None]]] = field(
        default_factory=list)
    """More fault coroutines, run beside the worker kills from the first order on and
    awaited before the workers stop (e.g. broker node kills, worker.lab.chaos_cluster)."""

    def worker_env(self, index: int, sim_url: str) -> dict[str, str]:
        # the simulator is local: no client-side rate limit needed
        exchanges = {"binance": {"driver": "binance", "urls": {"rest": sim_url},
                                 "timeout_ms": 1000, "rate_limit": False,
                                 "options": {"recvWindow": 1500}}}
        rate = self.crashes_expected / max(1, self.orders) / 4
        crash_points = ",".join(f"{p}:{rate:.6f}" for p in POINTS)
        env = dict(os.environ, AMQP_URL=self.amqp_url, OW_PREFIX=self.prefix, OW_SHARDS="8",
                   OW_PREFETCH="16", OW_DELIVERY_LIMIT=str(self.delivery_limit),
                   OW_STANDBY_DELAY_S="1",
                   OW_POLL_INTERVAL_S="0.1", OW_RETRY_INITIAL_S="0.05",
                   OW_RETRY_MAX_TOTAL_S="5", OW_RECONCILE_DELAY_S="0.1",
                   OW_RECONCILE_LOOKUPS="3", OW_LOG_LEVEL="ERROR", OW_SHUTDOWN_GRACE_S="5",
                   OW_WORKER_INDEX=str(index), OW_WORKER_COUNT=str(self.workers),
                   OW_EXCHANGES=json.dumps(exchanges), OW_CRASH_POINTS=crash_points)
        for a in range(self.accounts):
            env[f"OW_CRED_CH{a}_BINANCE_API_KEY"] = KEY
            env[f"OW_CRED_CH{a}_BINANCE_SECRET"] = SECRET
        return env

    def commands(self) -> list[PlaceOrder]:
        rng = random.Random(self.seed)
        out = []
        for i in range(self.orders):
            limit = rng.random() < 0.15
            side = rng.choice(["buy", "sell"])
            passive = "58000" if side == "buy" else "62000"  # rests, then times out
            out.append(PlaceOrder(
                command_id=f"ch-{i}", account=f"ch{rng.randrange(self.accounts)}",
                exchange="binance", symbol="BTC/USDT", side=side,  # type: ignore[arg-type]
                type="limit" if limit else "market", amount="0.001",
                price=passive if limit else None, timeout_s=rng.uniform(0.3, 1.0),
                created_at=datetime.now(UTC)))
        return out


class Fleet:
    """Worker subprocesses that can be killed and are restarted when they die."""

    def __init__(self, chaos: Chaos, sim_url: str) -> None:
        self.chaos, self.sim_url = chaos, sim_url
        self.procs: list[asyncio.subprocess.Process | None] = [None] * chaos.workers

    async def start(self, i: int) -> None:
        self.procs[i] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "run", env=self.chaos.worker_env(i, self.sim_url),
            stderr=asyncio.subprocess.DEVNULL)

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for i, p in enumerate(self.procs):
                if p is None or p.returncode is not None:
                    if p is not None and p.returncode == 86:
                        self.chaos.crashes += 1
                    await self.start(i)
            await asyncio.sleep(0.2)

    def kill(self, i: int) -> None:
        p = self.procs[i]
        if p is not None and p.returncode is None:
            p.kill()
            self.chaos.kills += 1

    async def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.returncode is None:
                p.terminate()
        for p in self.procs:
            if p is not None:
                try:
                    await asyncio.wait_for(p.wait(), 20)
                except TimeoutError:
                    p.kill()


@dataclass
class Stage:
    """What an extra fault coroutine sees; ``stop`` is set when the calm begins."""

    chaos: Chaos
    fleet: Fleet
    sim: BinanceSim
    log: EventLog
    stop: asyncio.Event


def _local_broker(url: str) -> bool:
    return shutil.which("rabbitmqctl") is not None and "," not in url and (
        "127.0.0.1" in url or "localhost" in url)


async def _restart_broker() -> None:
    for cmd in (["rabbitmqctl", "stop_app"], ["rabbitmqctl", "start_app"],
                ["rabbitmqctl", "await_startup"]):
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()


async def _mayhem(chaos: Chaos, fleet: Fleet, stop: asyncio.Event) -> None:
    rng = random.Random(chaos.seed + 1)
    restart_at = time.monotonic() + chaos.kill_every_s * 2.5
    while not stop.is_set():
        await asyncio.sleep(chaos.kill_every_s * rng.uniform(0.5, 1.5))
        if stop.is_set():
            break
        if chaos.broker_restart and not chaos.broker_restarts and time.monotonic() > restart_at:
            await _restart_broker()
            chaos.broker_restarts += 1
            continue
        fleet.kill(rng.randrange(chaos.workers))


async def run(chaos: Chaos, drain_timeout_s: float = 120.0) -> dict[str, object]:
    if chaos.broker_restart and not _local_broker(chaos.amqp_url):
        chaos.broker_restart = False
    sim = BinanceSim({KEY: SECRET})
    sim_url = await sim.start()
    sim.faults.set(FAULTS, seed=chaos.seed)
    cmds = chaos.commands()
    log = EventLog(chaos.amqp_url, chaos.prefix)
    stop_chaos, stop_fleet = asyncio.Event(), asyncio.Event()
    fleet = Fleet(chaos, sim_url)
    started = time.monotonic()
    async with OrderClient(chaos.amqp_url, prefix=chaos.prefix, shards=8,
                           delivery_limit=chaos.delivery_limit,
                           watch="") as client:
        await log.start()
        supervisor = asyncio.create_task(fleet.supervise(stop_fleet))
        mayhem = asyncio.create_task(_mayhem(chaos, fleet, stop_chaos))
        stage = Stage(chaos, fleet, sim, log, stop_chaos)
        extras = [asyncio.create_task(fault(stage)) for fault in chaos.extra_faults]
        for n, cmd in enumerate(cmds):
            await client.send(cmd)
            await asyncio.sleep(max(0.0, started + n / chaos.rate_per_s - time.monotonic()))
        # keep breaking things while the backlog is worked off, then drain in peace
        ids = {c.command_id for c in cmds}
        calm_at = time.monotonic() + chaos.kill_every_s * 3
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and not ids <= log.terminal_commands():
            if time.monotonic() > calm_at:
                stop_chaos.set()
            await asyncio.sleep(0.5)
        stop_chaos.set()
        await mayhem
        await asyncio.gather(*extras)
        stop_fleet.set()
        await supervisor
        await fleet.stop()
        await asyncio.sleep(1.0)  # let the last deliveries of events arrive
        dead = await drain_dead_letters(chaos.amqp_url, client.names)
        await log.stop()
        assert client._channel is not None
        await delete(client._channel, client.names)
    await sim.stop()
    return report(chaos, cmds, sim, log, dead, time.monotonic() - started)


def report(chaos: Chaos, cmds: list[PlaceOrder], sim: BinanceSim, log: EventLog,
           dead: list[tuple[bytes, str]], elapsed_s: float) -> dict[str, object]:
    per_cid = sim.orders_per_client_id()
    placed = [c for c in cmds if per_cid.get(client_order_id(c.account, c.command_id))]
    duplicates = [c.command_id for c in cmds
                  if per_cid.get(client_order_id(c.account, c.command_id), 0) > 1]
    no_terminal = [c.command_id for c in cmds if c.command_id not in log.terminal_commands()]
    lost = 0
    for c in placed:  # an order on the exchange needs its acceptance and its outcome
        kinds = log.kinds.get(c.command_id, set())
        lost += "order_accepted" not in kinds
        lost += not kinds & {"order_filled", "order_canceled"}
    return {
        "commands": len(cmds), "elapsed_s": round(elapsed_s, 1),
        "orders_on_exchange": sum(per_cid.values()), "commands_placed": len(placed),
        "commands_with_exactly_one_order": sum(
            per_cid.get(client_order_id(c.account, c.command_id)) == 1 for c in placed),
        "commands_with_duplicate_orders": len(duplicates),
        "commands_without_terminal_event": len(no_terminal),
        "events_lost": lost, "events_unique": len(log.seen),
        "duplicate_event_deliveries": log.duplicates,
        "dead_lettered_commands": len(dead),
        "worker_sigkills": chaos.kills, "worker_crash_points": chaos.crashes,
        "broker_restarts": chaos.broker_restarts,
        "faults_injected": sum(sim.faults.injected.values()),
        "outcomes": dict(sorted(log.outcomes.items())),
        "examples_without_terminal": no_terminal[:5], "examples_duplicated": duplicates[:5],
    }


def ok(result: dict[str, object]) -> bool:
    return (result["commands_with_duplicate_orders"] == 0 and result["events_lost"] == 0
            and result["commands_without_terminal_event"] == 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=80.0)
    p.add_argument("--kill-every-s", type=float, default=4.0)
    p.add_argument("--no-broker-restart", action="store_true")
    args = p.parse_args()
    chaos = Chaos(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
                  orders=args.orders, workers=args.workers, rate_per_s=args.rate,
                  kill_every_s=args.kill_every_s, broker_restart=not args.no_broker_restart)
    print(f"chaos: {chaos.orders} orders, {chaos.workers} workers, prefix {chaos.prefix}",
          flush=True)
    result = asyncio.run(run(chaos, drain_timeout_s=300))
    width = max(map(len, result))
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    verdict = ok(result)
    print("PASS: nothing lost, nothing doubled" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

