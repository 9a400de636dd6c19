"""The worker, configured only through settings, on four venues of the local exchange
servers through the real ccxt clients, on the real broker: Binance spot, Binance
USDⓈ-M futures, Bybit spot, Bybit linear. Written against the client's public contract
(send / wait_first / wait_terminal / events of a command).

Out of scope here: restart reconciliation (worker start-up adoption is covered for
Binance spot in test_worker_binance.py; the lead is rewriting that lifecycle).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from schemas import client_order_id
from tests.conftest import cancel, place
from tests.exchange.conftest import BYBIT_RECV_WINDOW_MS, KEY, RECV_WINDOW_MS, SECRET, TIMEOUT_MS
from tests.integration.harness import Harness, harness
from worker.exchange.paper import PaperExchange
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim


@dataclass(frozen=True)
class Venue:
    name: str
    driver: str
    market_type: str
    symbol: str

    def config(self, url: str) -> dict[str, object]:
        window = RECV_WINDOW_MS if self.driver == "binance" else BYBIT_RECV_WINDOW_MS
        return {"driver": self.driver, "market_type": self.market_type, "live": True,
                "urls": {"rest": url}, "timeout_ms": TIMEOUT_MS,
                "options": {"recvWindow": window}}


VENUES = [Venue("binance", "binance", "spot", "BTC/USDT"),
          Venue("binance_usdm", "binance", "swap", "BTC/USDT:USDT"),
          Venue("bybit", "bybit", "spot", "BTC/USDT"),
          Venue("bybit_linear", "bybit", "swap", "BTC/USDT:USDT")]


@dataclass
class Setup:
    h: Harness
    venue: Venue
    sim: BinanceSim | BybitSim

    def book(self) -> PaperExchange:
        if isinstance(self.sim, BybitSim):
            return self.sim.desks[KEY].books["spot" if self.venue.market_type == "spot"
                                             else "linear"]
        return (self.sim.books if self.venue.market_type == "spot"
                else self.sim.futures.books)[KEY]

    def orders(self, cmd_account: str, command_id: str) -> int:
        return self.sim.orders_per_client_id().get(client_order_id(cmd_account, command_id), 0)


@pytest.fixture(params=VENUES, ids=[v.name for v in VENUES])
async def setup(request: pytest.FixtureRequest, amqp_url: str,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    async for s in _setup(request.param, amqp_url, monkeypatch):
        yield s


FUTURES = [v for v in VENUES if v.market_type != "spot"]


@pytest.fixture(params=FUTURES, ids=[v.name for v in FUTURES])
async def futures_setup(request: pytest.FixtureRequest, amqp_url: str,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    async for s in _setup(request.param, amqp_url, monkeypatch, OW_RISK_MAX_POSITION="0.015"):
        yield s


async def _setup(venue: Venue, amqp_url: str, monkeypatch: pytest.MonkeyPatch,
                 **env: str) -> AsyncIterator[Setup]:
    sim: BinanceSim | BybitSim = (BinanceSim({KEY: SECRET}, fill_ratio="0.5")
                                  if venue.driver == "binance"
                                  else BybitSim({KEY: SECRET}, fill_ratio="0.5"))
    url = await sim.start()
    monkeypatch.setenv(f"OW_CRED_ACCT1_{venue.name.upper().replace('-', '_')}_API_KEY", KEY)
    monkeypatch.setenv(f"OW_CRED_ACCT1_{venue.name.upper().replace('-', '_')}_SECRET", SECRET)
    try:
        async with harness(amqp_url, OW_EXCHANGES=json.dumps(
                {venue.name: venue.config(url)}), **env) as h:
            await h.start_worker()
            yield Setup(h, venue, sim)
    finally:
        await sim.stop()


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_market_and_limit_orders_fill(setup: Setup) -> None:
    v = setup.venue
    market = place(exchange=v.name, symbol=v.symbol)
    limit = place(exchange=v.name, symbol=v.symbol, type="limit", price="61000")
    async with setup.h.client() as client:
        for cmd in (market, limit):
            events = await client.submit(cmd, timeout_s=30)
            assert kinds(events)[0] == "OrderAccepted" and kinds(events)[-1] == "OrderFilled"
            assert events[-1].filled == Decimal("0.01") and events[-1].exchange_order_id
            assert setup.orders(cmd.account, cmd.command_id) == 1


async def test_partial_fill_then_timeout_cancel(setup: Setup) -> None:
    for b in setup.book()._books.values():
        b.tick_s = 1e6  # the first half fills on arrival, nothing after
    v = setup.venue
    cmd = place(exchange=v.name, symbol=v.symbol, type="limit", price="61000", timeout_s=1)
    async with setup.h.client() as client:
        events = await client.submit(cmd, timeout_s=30)
    assert kinds(events)[-1] == "OrderCanceled"  # never "filled": Bybit's
    assert events[-1].filled == Decimal("0.005")  # PartiallyFilledCanceled included
    assert setup.orders(cmd.account, cmd.command_id) == 1


async def test_timeout_and_explicit_cancel(setup: Setup) -> None:
    v = setup.venue
    timed_out = place(exchange=v.name, symbol=v.symbol, type="limit", price="57500",
                      timeout_s=0.5)
    resting = place(exchange=v.name, symbol=v.symbol, type="limit", price="57500",
                    timeout_s=60)
    async with setup.h.client() as client:
        assert kinds(await client.submit(timed_out, timeout_s=30))[-1] == "OrderCanceled"
        await client.send(resting)
        await client.wait_first(resting.command_id, 30)
        await client.send(cancel(resting.command_id, exchange=v.name, symbol=v.symbol))
        final = await client.wait_terminal(resting.command_id, 30)
    assert type(final).__name__ == "OrderCanceled"


@pytest.mark.parametrize("kind", ["accept_drop", "unknown_after", "latency"])
async def test_reconcile_after_ambiguous_create(setup: Setup, kind: str) -> None:
    setup.sim.faults.set([{"kind": kind, "group": "create", "count": 1, "delay_s": 1.3}])
    v = setup.venue
    cmd = place(exchange=v.name, symbol=v.symbol)
    async with setup.h.client() as client:
        events = await client.submit(cmd, timeout_s=40)
    assert kinds(events)[-1] == "OrderFilled"
    assert setup.orders(cmd.account, cmd.command_id) == 1


async def test_position_limit_uses_the_futures_position(futures_setup: Setup) -> None:
    v = futures_setup.venue
    first, second = (place(exchange=v.name, symbol=v.symbol) for _ in range(2))
    reduce = place(exchange=v.name, symbol=v.symbol, side="sell", amount="0.02")
    async with futures_setup.h.client() as client:
        assert kinds(await client.submit(first, timeout_s=30))[-1] == "OrderFilled"
        refused = (await client.submit(second, timeout_s=30))[-1]
        assert type(refused).__name__ == "OrderRejected"
        assert refused.reason == "risk_position_limit"  # long 0.01 + 0.01 > 0.015
        assert kinds(await client.submit(reduce, timeout_s=30))[-1] == "OrderFilled"
    assert futures_setup.orders(second.account, second.command_id) == 0
