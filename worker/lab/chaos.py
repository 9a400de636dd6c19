"""``make chaos``: many orders through several worker processes while everything breaks.

* worker subprocesses on the real broker, trading through ccxt on the local Binance
  simulator, which injects 5xx, 429, resets, accept-then-drop and latency, and whose
  clock jumps around the workers' (up to 1 s behind or ahead, issue 10); some creates
  are held inside it until near the end of the settle window (2.5 s: recvWindow 1.5 s
  + 1 s accepted skew), or answered -1007 "unknown" at once and executed 2 s later;
* workers are SIGKILLed repeatedly (and crash at random steps) and restarted;
* the broker node is restarted once (local broker only);
* with ``--streams`` (or ``CHAOS_STREAMS=1 make chaos``) the workers also follow
  orders over the simulator's user-data stream, which drops, duplicates, reorders
  and disconnects messages and stalls every ~15 s (``STREAM_FAULTS``).

The mix: market orders, limit orders that rest until their ``timeout_s``,
good-till-canceled limit orders canceled later by a CancelOrder, and
CancelOrders published right behind their PlaceOrder. Worker settings are the
defaults (delivery limit included), but for fast polling.

Then it checks the exchange against the event stream and prints the counts:
orders per command (must be exactly 1 where placed), commands without an
outcome event (0), events lost (0), orders left open on the exchange with
nobody following them (0), dead-lettered commands without an outcome (0),
cancels answered "not found" although their order exists (0), and duplicate
deliveries (deduplicable). The drain waits past its deadline while outcomes still
arrive (``DRAIN_QUIET_S``, ``DRAIN_MAX_FACTOR``); the report says what was missing at
the first deadline (a slow drain under load, not a loss, when it came later) and how
many events the observer left unread (must be 0, or the counts are incomplete).

Debugging: ``OW_CHAOS_LOG_DIR=dir`` keeps the workers' logs (INFO) there and writes
``report.json`` naming every failing command; ``OW_CHAOS_KEEP=1`` leaves the queues.
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
from typing import IO

import msgspec

from schemas import CancelOrder, PlaceOrder
from schemas.commands import Command
from worker.broker.deadletters import drain_dead_letters
from worker.broker.topology import delete
from worker.client import OrderClient
from worker.crashpoints import POINTS
from worker.lab.chaos_events import EventLog
from worker.lab.chaos_report import details, report
from worker.lab.chaos_report import ok as ok  # re-exported: tests and chaos_cluster judge with it
from worker.lab.sim.binance import BinanceSim

KEY, SECRET = "chaos-key-000001", "chaos-secret-000001"
FAULTS = [
    {"kind": "500", "group": "any", "rate": 0.01}, {"kind": "503", "group": "any", "rate": 0.005},
    {"kind": "429", "group": "any", "rate": 0.01}, {"kind": "reset", "group": "any", "rate": 0.005},
    {"kind": "accept_drop", "group": "create", "rate": 0.01},
    {"kind": "500_after", "group": "create", "rate": 0.01},
    {"kind": "latency", "group": "create", "rate": 0.005, "delay_s": 1.2},
    {"kind": "latency", "group": "create", "rate": 0.004, "delay_s": 2.3},
    {"kind": "unknown_late", "group": "create", "rate": 0.004, "delay_s": 2.0},
]
SKEW_MS = (-950, 1000)
"""The simulator's clock minus the workers': Binance refuses a timestamp 1 s or more
ahead of its clock, so further behind than that every request would be refused."""
STREAM_FAULTS = [{"kind": "drop", "rate": 0.01}, {"kind": "duplicate", "rate": 0.02},
                 {"kind": "reorder", "rate": 0.02}, {"kind": "disconnect", "rate": 0.002}]
STALL_EVERY_S, STALL_S = 15.0, 3.0
DRAIN_QUIET_S, DRAIN_MAX_FACTOR = 30.0, 3.0
"""Past the drain deadline, keep waiting while outcomes still arrive: until none came for
``DRAIN_QUIET_S``, at most ``DRAIN_MAX_FACTOR`` times the deadline."""


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
    seed: int = 7
    prefix: str = field(default_factory=lambda: f"owchaos-{uuid.uuid4().hex[:6]}")
    skew_every_s: float = 3.0
    kills: int = 0
    skews: int = 0
    crashes: int = 0
    broker_restarts: int = 0
    broker_restarts_wanted: int = 1
    """How many times the broker is restarted (``--broker-restarts``), 5 kill periods apart."""
    streams: bool = False
    """Follow orders over the simulator's user-data stream too, with stream faults."""
    sent_at: dict[str, float] = field(default_factory=dict)
    """Per command id: when its send began (epoch s; worker.lab.recovery)."""
    extra_faults: list[Callable[[Stage], Coroutine[None, None, None]]] = field(
        default_factory=list)
    """More fault coroutines, run beside the worker kills from the first order on and
    awaited before the workers stop (e.g. broker node kills, worker.lab.chaos_cluster)."""

    def worker_env(self, index: int, sim_url: str) -> dict[str, str]:
        # the simulator is local: no client-side rate limit needed
        exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": sim_url},
                                 "timeout_ms": 1000, "rate_limit": False,
                                 "options": {"recvWindow": 1500}}}
        if self.streams:
            exchanges["binance"].update(stream=True, stream_silence_s=2.0, urls={
                "rest": sim_url, "ws": sim_url.replace("http", "ws")})
        rate = self.crashes_expected / max(1, self.orders) / 4
        crash_points = ",".join(f"{p}:{rate:.6f}" for p in POINTS)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OW_CHAOS_")}
        env = dict(inherited, AMQP_URL=self.amqp_url, OW_PREFIX=self.prefix, OW_SHARDS="8",
                   OW_PREFETCH="16", OW_STANDBY_DELAY_S="1",
                   OW_TRACK_POLL_S="0.2", OW_TRACK_CYCLE_S="5", OW_RETRY_INITIAL_S="0.05",
                   OW_RETRY_MAX_TOTAL_S="5", OW_RECONCILE_DELAY_S="0.1",
                   OW_RECONCILE_LOOKUPS="3", OW_LOG_LEVEL="ERROR", OW_SHUTDOWN_GRACE_S="5",
                   OW_WORKER_INDEX=str(index), OW_WORKER_COUNT=str(self.workers),
                   OW_EXCHANGES=json.dumps(exchanges), OW_CRASH_POINTS=crash_points)
        if self.streams:
            env["OW_STREAM_RECONCILE_S"] = "10"
        for a in range(self.accounts):
            env[f"OW_CRED_CH{a}_BINANCE_API_KEY"] = self.key(a)
            env[f"OW_CRED_CH{a}_BINANCE_SECRET"] = SECRET
        return env

    def key(self, account: int) -> str:
        """With streams every account has its own API key (as on an exchange: a key's
        stream carries its own account's orders); without, all share one."""
        return f"{KEY}-{account}" if self.streams else KEY

    def commands(self) -> list[tuple[float, Command]]:
        """(send offset in seconds, command): the mix described in the module docstring."""
        rng = random.Random(self.seed)
        out: list[tuple[float, Command]] = []
        for i in range(self.orders):
            at = i / self.rate_per_s
            account = f"ch{rng.randrange(self.accounts)}"
            side = rng.choice(["buy", "sell"])
            passive = "58000" if side == "buy" else "62000"  # rests
            r = rng.random()
            kind = "market" if r < 0.7 else "timed" if r < 0.85 else "gtc" if r < 0.95 \
                else "cancel_behind"
            out.append((at, PlaceOrder(
                command_id=f"ch-{i}", account=account, exchange="binance",
                symbol="BTC/USDT", side=side,  # type: ignore[arg-type]
                type="market" if kind == "market" else "limit", amount="0.001",
                price=None if kind == "market" else passive,
                timeout_s=rng.uniform(0.5, 3.0) if kind == "timed" else None,
                created_at=datetime.now(UTC))))
            if kind in ("gtc", "cancel_behind"):
                later = at + (0.0 if kind == "cancel_behind" else rng.uniform(2.0, 10.0))
                out.append((later, CancelOrder(  # half of them without the symbol
                    command_id=f"cx-{i}", account=account, exchange="binance",
                    symbol="BTC/USDT" if i % 2 else None,
                    target_command_id=f"ch-{i}", created_at=datetime.now(UTC))))
        return sorted(out, key=lambda pair: pair[0])


class Fleet:
    """Worker subprocesses that can be killed and are restarted when they die."""

    def __init__(self, chaos: Chaos, sim_url: str) -> None:
        self.chaos, self.sim_url = chaos, sim_url
        self.procs: list[asyncio.subprocess.Process | None] = [None] * chaos.workers

    async def start(self, i: int) -> None:
        env = self.chaos.worker_env(i, self.sim_url)
        log_dir = os.environ.get("OW_CHAOS_LOG_DIR")  # debugging: keep the workers' logs
        err: int | IO[bytes] = asyncio.subprocess.DEVNULL
        if log_dir:
            env["OW_LOG_LEVEL"] = "INFO"
            err = open(f"{log_dir}/worker-{i}.log", "ab")  # noqa: ASYNC230 (lab debugging)
        self.procs[i] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "run", env=env, stderr=err)

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


async def _run(*cmd: str) -> int:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    return await proc.wait()


async def restart_broker() -> None:
    """Restart the whole local node. Not ``stop_app``/``start_app``: on RabbitMQ 3.10 that
    leaves the at-least-once dead-lettering supervisor dead, and every quorum queue with
    at-least-once dead-lettering then fails to elect a leader."""
    await _run("rabbitmqctl", "stop")
    for _ in range(60):  # a node still registered under its name cannot start again
        if not await _registered():
            break
        await asyncio.sleep(0.5)
    for attempt in range(90):
        if attempt % 30 == 0:  # launch (again, if the last launch did not come up)
            await _run("rabbitmq-server", "-detached")
        if await _run("rabbitmqctl", "await_startup", "--timeout", "5") == 0:
            return
        await asyncio.sleep(1)


async def heal_dead_letter_supervisor() -> bool:
    """RabbitMQ 3.10: deleting a quorum queue with at-least-once dead-lettering just as its
    dead-letter worker starts (right after a node restart, say) can kill
    ``rabbit_fifo_dlx_sup`` for good; every such queue declared afterwards fails with
    INTERNAL_ERROR. Restart it on the local node if it is dead; True if it was."""
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "eval", "whereis(rabbit_fifo_dlx_sup).",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    if out.strip() != b"undefined":
        return False
    await _run("rabbitmqctl", "-q", "eval",
               "supervisor:restart_child(rabbit_sup, rabbit_fifo_dlx_sup).")
    return True


async def _registered() -> bool:
    """Whether the node (``RABBITMQ_NODENAME``, default ``rabbit``) is still in epmd."""
    name = os.environ.get("RABBITMQ_NODENAME", "rabbit").split("@")[0]
    try:
        proc = await asyncio.create_subprocess_exec(
            "epmd", "-names", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    except OSError:  # no epmd on the PATH: nothing to wait for
        return False
    out, _ = await proc.communicate()
    return f"name {name} at port" in out.decode(errors="replace")


async def _mayhem(chaos: Chaos, fleet: Fleet, stop: asyncio.Event) -> None:
    rng = random.Random(chaos.seed + 1)
    restart_at = time.monotonic() + chaos.kill_every_s * 2.5
    while not stop.is_set():
        await asyncio.sleep(chaos.kill_every_s * rng.uniform(0.5, 1.5))
        if stop.is_set():
            break
        if chaos.broker_restart and chaos.broker_restarts < chaos.broker_restarts_wanted \
                and time.monotonic() > restart_at:
            await restart_broker()
            chaos.broker_restarts += 1
            restart_at = time.monotonic() + chaos.kill_every_s * 5
            continue
        if getattr(chaos, "kills_enabled", True):
            fleet.kill(rng.randrange(chaos.workers))


async def _skew(chaos: Chaos, sim: BinanceSim, stop: asyncio.Event) -> None:
    """Move the exchange's clock against the workers' while the chaos lasts."""
    rng = random.Random(chaos.seed + 2)
    while not stop.is_set():
        sim.clock_offset_ms = rng.randint(*SKEW_MS)
        chaos.skews += 1
        await asyncio.sleep(chaos.skew_every_s * rng.uniform(0.5, 1.5))
    sim.clock_offset_ms = 0
async def _stalls(stage: Stage) -> None:
    """Stall the user-data stream (connections open, nothing sent, no pong) now and then."""
    while not stage.stop.is_set():
        try:
            await asyncio.wait_for(stage.stop.wait(), STALL_EVERY_S)
        except TimeoutError:
            stage.sim.streams.hub.set_faults({"stall_s": STALL_S})


async def run(chaos: Chaos, drain_timeout_s: float = 120.0,
              drain_max_s: float | None = None) -> dict[str, object]:
    if chaos.broker_restart and not _local_broker(chaos.amqp_url):
        chaos.broker_restart = False
    sim = BinanceSim({chaos.key(a): SECRET for a in range(chaos.accounts)})
    sim_url = await sim.start()
    sim.faults.set(FAULTS, seed=chaos.seed)
    if chaos.streams:
        sim.streams.hub.set_faults({"rules": STREAM_FAULTS, "seed": chaos.seed})
        chaos.extra_faults.append(_stalls)
    cmds = chaos.commands()
    log = EventLog(chaos.amqp_url, chaos.prefix)
    stop_chaos, stop_fleet = asyncio.Event(), asyncio.Event()
    fleet = Fleet(chaos, sim_url)
    started = time.monotonic()
    async with OrderClient(chaos.amqp_url, prefix=chaos.prefix, shards=8, watch="") as client:
        supervisor = asyncio.create_task(fleet.supervise(stop_fleet))
        await client.wait_for_workers(60)
        await log.start()  # the workers declared the audit queue: it holds every event
        started = time.monotonic()
        mayhem = asyncio.create_task(_mayhem(chaos, fleet, stop_chaos))
        skew = asyncio.create_task(_skew(chaos, sim, stop_chaos))
        stage = Stage(chaos, fleet, sim, log, stop_chaos)
        extras = [asyncio.create_task(fault(stage)) for fault in chaos.extra_faults]
        for at, cmd in cmds:
            await asyncio.sleep(max(0.0, started + 1.0 + at - time.monotonic()))
            chaos.sent_at.setdefault(cmd.command_id, time.time())
            await client.send(msgspec.structs.replace(cmd, created_at=datetime.now(UTC)))
        # keep breaking things while the backlog is worked off, then drain in peace
        ids = {c.command_id for _, c in cmds}
        calm_at = time.monotonic() + chaos.kill_every_s * 3
        at_deadline = await _drain(ids, log, sim, drain_timeout_s, calm_at, stop_chaos,
                                   max_s=drain_max_s)
        stop_chaos.set()
        await mayhem
        await skew
        await asyncio.gather(*extras)
        stop_fleet.set()
        await supervisor
        await fleet.stop()
        await asyncio.sleep(1.0)  # let the last deliveries of events arrive
        dead = await drain_dead_letters(chaos.amqp_url, client.names)
        open_left = await sim.open_client_ids()
        unread = await log.unread()
        await log.stop()
        assert client._channel is not None
        if not os.environ.get("OW_CHAOS_KEEP"):  # debugging: leave the queues to inspect
            await delete(client._channel, client.names)
    await sim.stop()
    result = report(chaos, [c for _, c in cmds], sim, log, dead, open_left,
                    time.monotonic() - started)
    result.update(at_deadline, audit_events_unread=unread,
                  event_log_reconnects=log.reconnects)
    if log_dir := os.environ.get("OW_CHAOS_LOG_DIR"):  # debugging: which commands failed
        with open(f"{log_dir}/report.json", "w") as f:  # noqa: ASYNC230 (lab debugging)
            json.dump(details([c for _, c in cmds], sim, log, open_left) | result, f,
                      indent=1, default=str)
    return result


async def _drain(ids: set[str], log: EventLog, sim: BinanceSim, timeout_s: float,
                 calm_at: float, stop_chaos: asyncio.Event, *, max_s: float | None = None,
                 quiet_s: float = DRAIN_QUIET_S, tick_s: float = 0.5) -> dict[str, object]:
    """Wait until every command has its outcome event. The deadline (``timeout_s``) is
    extended while outcomes still arrive: until none came for ``quiet_s``, for at most
    ``max_s`` in all (default ``DRAIN_MAX_FACTOR`` times ``timeout_s``). Returns what was
    missing at the first deadline, so a report tells a slow drain (the outcomes came
    later) from a lost one."""
    max_s = timeout_s * DRAIN_MAX_FACTOR if max_s is None else max(max_s, timeout_s)
    start = time.monotonic()
    deadline = start + timeout_s
    snapshot: dict[str, object] = {}
    done, progress_at = len(ids & log.terminal_commands()), start
    while not ids <= log.terminal_commands():
        now = time.monotonic()
        if now > calm_at:
            stop_chaos.set()
        now_done = len(ids & log.terminal_commands())
        if now_done > done:
            done, progress_at = now_done, now
        if now >= deadline and not snapshot:
            snapshot = {"drain_extended": True,
                        "without_terminal_at_deadline": len(ids - log.terminal_commands()),
                        "open_at_deadline": len(await sim.open_client_ids())}
        if now >= deadline and (now - progress_at > quiet_s or now - start > max_s):
            break
        await asyncio.sleep(tick_s)
    return {"drain_s": round(time.monotonic() - start, 1), **snapshot}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=80.0)
    p.add_argument("--kill-every-s", type=float, default=4.0)
    p.add_argument("--no-broker-restart", action="store_true")
    p.add_argument("--broker-restarts", type=int, default=1,
                   help="restart the broker this many times (default 1)")
    p.add_argument("--streams", action="store_true",
                   default=os.environ.get("CHAOS_STREAMS", "") not in ("", "0"),
                   help="follow orders over the user-data stream too (env CHAOS_STREAMS=1)")
    args = p.parse_args()
    chaos = Chaos(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
                  orders=args.orders, workers=args.workers, rate_per_s=args.rate,
                  kill_every_s=args.kill_every_s, broker_restart=not args.no_broker_restart,
                  streams=args.streams, broker_restarts_wanted=args.broker_restarts)
    print(f"chaos: {chaos.orders} orders, {chaos.workers} workers, prefix {chaos.prefix}"
          f"{', order streams on' if chaos.streams else ''}", flush=True)
    result = asyncio.run(run(chaos, drain_timeout_s=300))
    width = max(map(len, result))
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    verdict = ok(result)
    print("PASS: nothing lost, nothing doubled" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

