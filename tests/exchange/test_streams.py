"""Orders followed over the simulators' private streams (real ccxt.pro), through the
tracker's follower, with stream faults: each case ends with exactly the right events
once. No broker: events go to an in-memory publisher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from schemas import OrderFilled, OrderPartiallyFilled, client_order_id
from worker.exchange.binance import BinanceExchange
from worker.exchange.bybit import BybitExchange
from worker.exchange.ccxt_adapter import CCXTAdapter
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim
from worker.lab.testing import FakePublisher, StaticExchanges
from worker.metrics import Metrics
from worker.orders.events import OrderRef
from worker.orders.tracker import Tracker
from worker.settings import ExchangeConfig, load_settings

KEY, SECRET = "stream-key-1", "stream-secret-1"
ACCOUNT = "acct1"
PRICE = Decimal("59000")


@dataclass
class Rig:
    sim: Any
    exchange: CCXTAdapter
    tracker: Tracker
    publisher: FakePublisher
    symbol: str

    def requests(self, suffix: str) -> int:
        by = getattr(self.sim, "by_endpoint", None)
        if by is None:
            return int(self.sim.requests)
        return sum(n for k, n in by.items() if k.endswith(suffix))

    async def rest(self, n: int, price: Decimal = PRICE) -> list[OrderRef]:
        """Place n resting buy limits and hand them to the tracker."""
        refs = []
        for i in range(n):
            cmd = f"cmd-{i}-{time.monotonic_ns()}"
            cid = client_order_id(ACCOUNT, cmd)
            state = await self.exchange.execute_trade(OrderRequest(
                symbol=self.symbol, side="buy", type="limit", amount=Decimal("0.004"),
                price=price, client_order_id=cid))
            ref = OrderRef(command_id=cmd, account=ACCOUNT, exchange="x",
                           symbol=self.symbol, client_order_id=cid)
            entry = self.tracker.add(self.tracker.open_entry(ref, state, deadline_at=None,
                                                             price=str(price)))
            entry.accepted.set()
            refs.append(ref)
        return refs

    def fill(self, price: Decimal = PRICE) -> None:
        self.sim.move_price("BTC/USDT", price - 100)

    async def stream_faults(self, body: dict[str, Any]) -> None:
        self.sim.streams.hub.set_faults(body)

    def fills(self, ref: OrderRef) -> list[Any]:
        return [e for e in self.publisher.events if e.client_order_id == ref.client_order_id
                and isinstance(e, OrderFilled | OrderPartiallyFilled)]

    async def until_filled(self, ref: OrderRef, within: float = 8.0) -> float:
        start = time.monotonic()
        while not any(isinstance(e, OrderFilled) for e in self.fills(ref)):
            if time.monotonic() - start > within:
                raise AssertionError(f"no fill event; events: {self.publisher.kinds()}")
            await asyncio.sleep(0.01)
        return time.monotonic() - start


VENUES = {"binance-spot": ("binance", "spot"), "binance-usdm": ("binance", "swap"),
          "bybit-spot": ("bybit", "spot"), "bybit-linear": ("bybit", "swap")}


async def _rig(venue: str, *, reconcile_s: float = 30.0, silence_s: float = 1.0,
               fill_ratio: str = "1") -> AsyncIterator[Rig]:
    driver, market_type = VENUES[venue]
    sim: Any = (BinanceSim if driver == "binance" else BybitSim)({KEY: SECRET},
                                                                 fill_ratio=fill_ratio)
    url = await sim.start()
    cfg = ExchangeConfig(driver=driver, market_type=market_type,  # type: ignore[arg-type]
                         urls={"rest": url, "ws": url.replace("http", "ws")},
                         stream=True, stream_silence_s=silence_s, timeout_ms=2000)
    klass = BinanceExchange if driver == "binance" else BybitExchange
    exchange = klass("x", cfg, Credentials(KEY, SECRET))
    settings = load_settings({}, track_poll_s=0.1, stream_reconcile_s=reconcile_s)
    publisher = FakePublisher()
    tracker = Tracker(settings, StaticExchanges({"x": exchange}), publisher, Metrics())
    symbol = "BTC/USDT" if market_type == "spot" else "BTC/USDT:USDT"
    async with exchange:
        rig = Rig(sim, exchange, tracker, publisher, symbol)
        try:
            yield rig
        finally:
            await tracker.close()
            await sim.stop()


@pytest.fixture(params=list(VENUES))
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    async for r in _rig(request.param):
        yield r


async def _healthy(rig: Rig, times: int = 1) -> None:
    """Wait until the stream has (re)connected ``times`` times and the REST reconcile
    that follows is done."""
    connected = rig.tracker.metrics.reconciliations.labels("stream_connected")
    for _ in range(1500):
        if connected._value.get() >= times:
            await asyncio.sleep(0.3)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("stream never came up")


def _once(rig: Rig, ref: OrderRef) -> list[Any]:
    ids = [e.event_id for e in rig.publisher.events if e.client_order_id == ref.client_order_id]
    assert len(ids) == len(set(ids)), rig.publisher.kinds()
    filled = [e for e in rig.fills(ref) if isinstance(e, OrderFilled)]
    assert len(filled) == 1
    assert filled[0].filled == Decimal("0.004")
    progress = [e.filled for e in rig.fills(ref)]
    assert progress == sorted(progress), progress  # never a step back
    return filled


async def test_fill_arrives_over_the_stream_without_rest_listing(rig: Rig) -> None:
    (ref,) = await rig.rest(1)
    await _healthy(rig)
    listed = rig.requests("openOrders") + rig.requests("realtime")
    rig.fill()
    latency = await rig.until_filled(ref)
    assert latency < 1.0
    _once(rig, ref)
    assert rig.requests("openOrders") + rig.requests("realtime") <= listed + 1
    filled = rig.fills(ref)[-1]
    assert filled.fee > 0  # Binance: from myTrades by REST; Bybit: cumExecFee


@pytest.mark.parametrize("venue", ["binance-spot", "bybit-linear"])
async def test_disconnect_mid_fill(venue: str) -> None:
    async for rig in _rig(venue):
        (ref,) = await rig.rest(1)
        await _healthy(rig)
        await rig.stream_faults({"rules": [{"kind": "disconnect", "count": 1}]})
        rig.fill()  # the fill's message is lost with the connection
        await rig.until_filled(ref)
        _once(rig, ref)
        await asyncio.sleep(0.5)
        _once(rig, ref)


@pytest.mark.parametrize("venue", ["binance-usdm", "bybit-spot"])
async def test_stalled_stream(venue: str) -> None:
    async for rig in _rig(venue, silence_s=1.0):
        (ref,) = await rig.rest(1)
        (later,) = await rig.rest(1, PRICE - 1000)
        await _healthy(rig)
        await rig.stream_faults({"stall_s": 2.5})
        rig.fill()  # lost in the stall; the keepalive notices, REST finds the fill
        await rig.until_filled(ref, within=6)
        _once(rig, ref)
        await _healthy(rig, 2)  # the stall ends, the stream comes back
        _once(rig, ref)
        broke = rig.tracker.metrics.reconciliations.labels("stream_broke")._value.get()
        assert broke >= 1
        listed = rig.requests("openOrders") + rig.requests("realtime")
        rig.fill(PRICE - 1000)  # over the stream again: no REST listing needed
        assert await rig.until_filled(later) < 2.0
        _once(rig, later)
        assert rig.requests("openOrders") + rig.requests("realtime") <= listed + 1


@pytest.mark.parametrize("venue", ["binance-spot", "bybit-linear"])
async def test_duplicated_and_out_of_order_updates(venue: str) -> None:
    async for rig in _rig(venue, fill_ratio="0.25"):
        refs = await rig.rest(2)
        await _healthy(rig)
        await rig.stream_faults({"rules": [{"kind": "reorder", "rate": 0.5},
                                           {"kind": "duplicate", "rate": 0.5}], "seed": 3})
        rig.fill()
        for ref in refs:
            await rig.until_filled(ref)
        await asyncio.sleep(0.5)
        for ref in refs:
            _once(rig, ref)
        assert rig.sim.streams.hub.injected.get("duplicate")
        assert rig.sim.streams.hub.injected.get("reorder")


@pytest.mark.parametrize("venue", ["binance-usdm", "bybit-spot"])
async def test_fill_missing_from_the_stream(venue: str) -> None:
    async for rig in _rig(venue, reconcile_s=1.0):
        (ref,) = await rig.rest(1)
        await _healthy(rig)
        await rig.stream_faults({"rules": [{"kind": "drop", "rate": 1.0}]})
        rig.fill()  # nothing reaches the stream: only the REST reconcile sees the fill
        latency = await rig.until_filled(ref, within=4)
        assert 0.2 < latency < 2.5
        _once(rig, ref)
