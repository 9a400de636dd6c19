"""An in-memory exchange account on virtual time, with Binance's create semantics and the
network between it and the workers, faults included. Implements the ``Exchange`` port;
``execute_trade`` is the real ``worker.exchange.placement.place_once``.

A create carries the caller's wall-clock timestamp and arrives ``delay`` later. The
exchange executes it only if ``ts < its_clock + 1 s`` and ``its_clock - ts <= recvWindow``
(Binance's rule), and refuses a client id only while an order with it is open. The
execution is a timer of its own: killing the caller does not stop a request on the wire.
Faults (drawn per call from the world's random stream):

* delay          the request waits inside the exchange up to recvWindow + 1.2 s; the
                 caller times out (ambiguous) meanwhile
* unknown        -1007: answered "execution status unknown"; the backend may still
                 execute it later, while the request's timestamp is valid
* lost_response  executed, but the response never arrives (ambiguous)
* read_fail      a read raises TransientError (also during a read outage window)
* read_refused   a read raises AuthError (PermanentError)
* lookup_lag     find_order misses orders younger than ``lag_s`` (lagging history)
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

from worker.errors import (
    AmbiguousOrderState,
    AuthError,
    DuplicateClientOrderId,
    OrderNotFound,
    TransientError,
)
from worker.exchange.binance import BinanceExchange
from worker.exchange.models import (
    Balance,
    Candle,
    MarketRules,
    OrderRequest,
    OrderState,
    Position,
)
from worker.exchange.placement import place_once
from worker.lab.sim_placement.vclock import EPOCH, TIME_SHIM
from worker.policy import placement_policy
from worker.settings import ExchangeConfig

if TYPE_CHECKING:
    from worker.lab.sim_placement.world import World

PRICE = Decimal(100)
AHEAD_S = 1.0
"""Binance accepts a request timestamp up to 1 s ahead of its clock."""


def binance_settle_s(recv_window_s: float) -> float:
    """The settle window the real Binance driver derives for this recvWindow."""
    cfg = ExchangeConfig(driver="binance", options={"recvWindow": int(recv_window_s * 1000)})
    return BinanceExchange("sim", cfg, None).settle_s


@dataclasses.dataclass
class SimOrder:
    id: str
    req: OrderRequest
    created: float
    status: str = "open"
    filled: Decimal = Decimal(0)

    def state(self) -> OrderState:
        r = self.req
        fee = (self.filled * PRICE / 1000).quantize(Decimal("0.00000001"))
        return OrderState(id=self.id, client_order_id=r.client_order_id, symbol=r.symbol,
                          side=r.side, type=r.type, status=self.status,  # type: ignore[arg-type]
                          amount=r.amount, filled=self.filled, remaining=r.amount - self.filled,
                          price=r.price, average=PRICE if self.filled else None, fee=fee,
                          fee_currency="USDT",
                          timestamp_ms=int((EPOCH + self.created) * 1000))


class SimExchange:
    """One account of the simulated exchange, shared by every simulated worker."""

    name = "sim"

    def __init__(self, world: World, recv_window_s: float, timeout_s: float) -> None:
        self.world = world
        self.recv_window_s = recv_window_s
        self.timeout_s = timeout_s
        self._settle_s = binance_settle_s(recv_window_s)
        self.policy = dataclasses.replace(placement_policy(world.settings),
                                          settle_s=self._settle_s)
        self.orders: dict[str, SimOrder] = {}
        self._ids = itertools.count(1)

    @property
    def settle_s(self) -> float:
        return self._settle_s

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # -- the exchange itself (timers; no caller involved) -----------------------------
    def clock(self) -> float:
        return EPOCH + self.world.loop.time() + self.world.sched.exch_skew

    def _valid(self, ts: float) -> bool:
        now = self.clock()
        return ts < now + AHEAD_S and now - ts <= self.recv_window_s

    def _execute(self, req: OrderRequest, ts: float) -> tuple[str, Any]:
        if not self._valid(ts):
            return "refused", TransientError("-1021 Timestamp for this request is outside "
                                             "of the recvWindow")
        if any(o.status == "open" and o.req.client_order_id == req.client_order_id
               for o in self.orders.values()):
            return "duplicate", DuplicateClientOrderId("-2010 Duplicate order sent.")
        order = SimOrder(f"S{next(self._ids)}", req, self.world.loop.time())
        self.orders[order.id] = order
        self.world.note(f"exchange: order {order.id} created for {req.client_order_id[-6:]}")
        if req.type == "market":
            order.filled, order.status = req.amount, "closed"
        else:
            self.world.schedule_fills(self, order)
        return "ok", order.state()

    def fill(self, order: SimOrder, amount: Decimal) -> None:
        if order.status == "open":
            order.filled = min(order.req.amount, order.filled + amount)
            if order.filled >= order.req.amount:
                order.status = "closed"

    def _late(self, req: OrderRequest, ts: float) -> None:
        outcome, _ = self._execute(req, ts)
        self.world.note(f"exchange: late execution of {req.client_order_id[-6:]}: {outcome}")

    # -- the port, as seen through the network -----------------------------------------
    async def _read(self, op: str) -> None:
        w = self.world
        n = await w.port_call(op)
        await asyncio.sleep(w.latency())
        await w.port_done(n)
        if w.read_fails(op):
            await asyncio.sleep(w.rng.uniform(0, self.timeout_s))
            raise TransientError(f"{op}: NetworkError (simulated)")
        if w.read_refused(op):
            raise AuthError(f"{op}: -2015 Invalid API-key, IP, or permissions (simulated)")

    async def create_order(self, req: OrderRequest) -> OrderState:
        w = self.world
        n = await w.port_call("create_order")
        ts = TIME_SHIM.time()  # signed with the caller's clock
        fault = w.create_fault()
        delay = w.latency()
        if fault == "delay":
            delay = w.rng.uniform(self.timeout_s, self.recv_window_s + AHEAD_S + 0.2)
        answer: asyncio.Future[tuple[str, Any]] = w.loop.create_future()

        def arrive() -> None:
            if fault == "unknown":
                later = w.rng.random() < 0.5
                if later:
                    w.loop.call_later(w.rng.uniform(0, self.recv_window_s + AHEAD_S),
                                      self._late, req, ts)
                w.note(f"exchange: -1007 for {req.client_order_id[-6:]}, executes later: "
                       f"{later}")
                result: tuple[str, Any] = ("unknown", AmbiguousOrderState(
                    "-1007 Timeout waiting for response from backend server. Send status "
                    "unknown; execution status unknown."))
            else:
                result = self._execute(req, ts)
                if fault == "lost_response":
                    return  # the answer never comes back
            w.loop.call_later(w.latency(), _answer, result)

        def _answer(result: tuple[str, Any]) -> None:
            if not answer.done():
                answer.set_result(result)

        w.loop.call_later(delay, arrive)
        await w.port_done(n)
        try:
            _, value = await asyncio.wait_for(asyncio.shield(answer), self.timeout_s)
        except TimeoutError:
            raise AmbiguousOrderState("RequestTimeout: create_order (simulated)") from None
        if isinstance(value, Exception):
            raise value
        assert isinstance(value, OrderState)
        return value

    async def execute_trade(self, request: OrderRequest, *,
                            assume_absent: bool = False) -> OrderState:
        return await place_once(self, request, self.policy, assume_absent=assume_absent)

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        await self._read("find_order")
        lag = self.world.sched.lookup_lag_s
        now = self.world.loop.time()
        found = [o for o in self.orders.values() if o.req.client_order_id == client_order_id]
        if not found:
            return None
        if now - found[-1].created < lag:
            self.world.hit("lookup_lag")
            return None
        return found[-1].state()

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        await self._read("get_order")
        order = self.orders.get(order_id)
        if order is None:
            raise OrderNotFound(f"-2013 Order does not exist: {order_id}")
        return order.state()

    async def cancel_order(self, symbol: str, order_id: str) -> OrderState:
        await self._read("cancel_order")
        order = self.orders.get(order_id)
        if order is None or order.status != "open":
            if order is not None:
                self.world.hit("cancel_race")
            raise OrderNotFound(f"-2011 Unknown order sent: {order_id}")
        order.status = "canceled"
        self.world.note(f"exchange: order {order_id} canceled")
        return order.state()

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        await self._read("get_open_orders")
        return [o.state() for o in self.orders.values()
                if o.status == "open" and symbol in (None, o.req.symbol)]

    async def get_order_history(self, symbol: str, limit: int = 100) -> list[OrderState]:
        await self._read("get_order_history")
        return [o.state() for o in self.orders.values()][-limit:]

    # -- market data and account (risk checks) -------------------------------------------
    async def get_ticker_price(self, symbol: str) -> Decimal:
        await self.world.port_call("get_ticker_price")
        return PRICE

    async def fetch_ohlcv(self, symbol: str, timeframe: str = "1m",
                          limit: int = 100) -> list[Candle]:
        return []

    async def get_market_rules(self, symbol: str) -> MarketRules:
        base, quote = symbol.split("/")
        return MarketRules(symbol=symbol, base=base, quote=quote, amount_step=Decimal("0.001"),
                           price_step=Decimal("0.01"), min_amount=Decimal("0.001"),
                           min_notional=Decimal(1))

    async def get_balances(self) -> dict[str, Balance]:
        await self.world.port_call("get_balances")
        big = Decimal(10) ** 9
        return {"USDT": Balance(free=big, total=big), "BTC": Balance()}

    async def get_portfolio_value(self, quote: str = "USDT") -> Decimal:
        return Decimal(10) ** 9

    async def get_positions(self) -> list[Position]:
        return []
