"""Order lifecycle (issue 9) end to end: resting orders outlive workers and the broker,
nothing stays unacked for long, and a cancel right behind its place never overtakes it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage

from schemas import CancelDone, Event, OrderCanceled, client_order_id
from schemas.events import decode_event, event_kind
from tests.conftest import cancel, place
from tests.exchange.conftest import KEY, SECRET
from tests.integration.harness import Harness, harness
from worker.client import OrderClient
from worker.lab.chaos import restart_broker
from worker.lab.chaos_events import EventLog
from worker.lab.sim.binance import BinanceSim

WAIT_S = 60.0


def _exchanges(sim_url: str) -> str:
    return json.dumps({"binance": {"driver": "binance", "live": True, "urls": {"rest": sim_url},
                                   "timeout_ms": 1000, "rate_limit": False,
                                   "options": {"recvWindow": 1500}}})


class AuditLog(EventLog):
    """The durable audit stream, deduplicated by event id, keeping every event."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        super().__init__(amqp_url, prefix)
        self.events: dict[str, list[Event]] = {}

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = decode_event(message.body)
        if event.event_id not in self.seen:
            self.events.setdefault(event.command_id, []).append(event)
        await super()._on_event(message)

    def kinds_of(self, command_id: str) -> Counter[str]:
        return Counter(event_kind(e) for e in self.events.get(command_id, []))


async def _until(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def _move_price(sim_url: str, symbol: str, price: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
            f"{sim_url}/_admin/price", json={"symbol": symbol, "price": price}) as resp:
        assert resp.status == 200, await resp.text()


def _local_node(url: str) -> bool:
    return shutil.which("rabbitmqctl") is not None and "," not in url and (
        "127.0.0.1" in url or "localhost" in url)


# -- 1. a resting order survives SIGKILL, broker restart and two failovers --------------

class Workers:
    """``python -m worker run`` subprocesses on one prefix, trading on the simulator."""

    def __init__(self, amqp_url: str, prefix: str, sim_url: str) -> None:
        self.env = dict(os.environ, AMQP_URL=amqp_url, OW_PREFIX=prefix, OW_SHARDS="4",
                        OW_STANDBY_DELAY_S="1", OW_TRACK_POLL_S="0.1", OW_TRACK_CYCLE_S="2",
                        OW_RETRY_INITIAL_S="0.05", OW_RETRY_MAX_TOTAL_S="5",
                        OW_RECONCILE_DELAY_S="0.1", OW_LOG_LEVEL="ERROR",
                        OW_SHUTDOWN_GRACE_S="5", OW_WORKER_COUNT="2",
                        OW_EXCHANGES=_exchanges(sim_url),
                        OW_CRED_ACCT1_BINANCE_API_KEY=KEY, OW_CRED_ACCT1_BINANCE_SECRET=SECRET)
        self.env.pop("OW_CRASH_POINTS", None)
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, index: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "run", env=dict(self.env, OW_WORKER_INDEX=str(index)),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.terminate()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
                await p.wait()


async def test_resting_order_survives_kill_broker_restart_and_two_failovers(
        amqp_url: str) -> None:
    if not _local_node(amqp_url):
        pytest.skip("restarts the broker node: needs a local node and rabbitmqctl")
    started = time.monotonic()
    sim = BinanceSim({KEY: SECRET})
    sim_url = await sim.start()
    async with harness(amqp_url) as h:  # the prefix, and the topology deleted at the end
        workers = Workers(amqp_url, h.prefix, sim_url)
        log = AuditLog(amqp_url, h.prefix)
        try:
            w0, w1 = await workers.start(0), await workers.start(1)
            async with OrderClient(amqp_url, prefix=h.prefix, shards=4, watch="") as client:
                await client.wait_for_workers(WAIT_S)
                await log.start()
                a = place(exchange="binance", type="limit", price="40000", timeout_s=None)
                b = place(exchange="binance", side="sell", type="limit", price="90000",
                          timeout_s=None)
                await client.send(a)
                await client.send(b)
                await _until(lambda: all(log.kinds_of(c.command_id)["order_accepted"]
                                         for c in (a, b)), "both orders accepted")
                w0.kill()  # failover 1: every shard ends up with w1
                await w0.wait()
                await asyncio.sleep(3)  # a tracking cycle with w1 alone
                await workers.start(0)
                await restart_broker()
                await asyncio.sleep(3)
                w1.kill()  # failover 2: a fresh worker takes over
                await w1.wait()
                await workers.start(1)
                await asyncio.sleep(3)
                assert not log.kinds_of(a.command_id) & Counter(
                    {"order_filled": 1, "order_canceled": 1}), "A ended before its price came"
                await _move_price(sim_url, "BTC/USDT", "30000")  # A (buy 40000) crosses
                await _until(lambda: log.kinds_of(a.command_id)["order_filled"] >= 1,
                             "A filled")
                x = cancel(b.command_id, exchange="binance", symbol=None)
                await client.send(x)
                await _until(lambda: bool(log.kinds_of(x.command_id)["cancel_done"]),
                             "B's cancel done")
                await _until(lambda: bool(log.kinds_of(b.command_id)["order_canceled"]),
                             "B canceled")
                await asyncio.sleep(2 * 2)  # two more cycles: any duplicate state would show
        finally:
            await workers.stop()
            await log.stop()
            await sim.stop()
    kinds_a = log.kinds_of(a.command_id)
    assert kinds_a["order_accepted"] == 1 and kinds_a["order_filled"] == 1, kinds_a
    assert not kinds_a["order_canceled"] and not kinds_a["order_failed"], kinds_a
    partial_fills = [e.filled for e in log.events[a.command_id]
                     if event_kind(e) == "order_partially_filled"]
    assert len(partial_fills) == len(set(partial_fills))
    kinds_b = log.kinds_of(b.command_id)
    assert kinds_b["order_accepted"] == 1 and kinds_b["order_canceled"] == 1, kinds_b
    assert not kinds_b["order_filled"]
    done = [e for e in log.events[x.command_id] if isinstance(e, CancelDone)]
    assert len(done) == 1 and done[0].order_status == "canceled"
    per_cid = sim.orders_per_client_id()
    for c in (a, b):
        assert per_cid[client_order_id(c.account, c.command_id)] == 1
    assert time.monotonic() - started < 120
