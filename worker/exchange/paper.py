"""In-process paper exchange: the default, needs no credentials or network.

Prices follow a seeded random walk advanced lazily by wall time (one tick per
``tick_s``). Market orders fill against the walk at once, limit orders when the
price crosses; each tick fills at most ``fill_ratio`` of an order's amount, so
ratios below 1 produce partial fills. Like Binance, a client order id is refused
only while an order with it is still open.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Self

from worker.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from worker.exchange.models import (
    Balance,
    Candle,
    MarketRules,
    OrderRequest,
    OrderState,
    Position,
    TradingFee,
)
from worker.exchange.placement import PlacementPolicy, place_once
from worker.exchange.seed_api import Positions, order_request
from worker.settings import ExchangeConfig

DEFAULT_PRICES = {
    "BTC/USDT": Decimal("60000"),
    "ETH/USDT": Decimal("3000"),
    "SOL/USDT": Decimal("150"),
}
DEFAULT_BALANCES = {
    "USDT": Decimal("1000000"),
    "BTC": Decimal("10"),
    "ETH": Decimal("100"),
    "SOL": Decimal("1000"),
}
FEE_RATE = Decimal("0.001")
SPREAD_BPS = Decimal(2)
Q8 = Decimal("0.00000001")


class _Book:
    """Random-walk price of one symbol with its tick history."""

    def __init__(self, symbol: str, price: Decimal, tick_s: float, seed: int) -> None:
        self.symbol = symbol
        self.price = price
        self.tick_s = tick_s
        self.rng = random.Random(seed)
        self.last_tick = time.monotonic()
        self.history: deque[tuple[int, Decimal]] = deque(maxlen=20_000)
        self.history.append((int(time.time() * 1000), price))

    def advance(self) -> int:
        ticks = int((time.monotonic() - self.last_tick) / self.tick_s)
        for _ in range(min(ticks, 1000)):
            step = Decimal(self.rng.gauss(0, 3)).quantize(Decimal("0.01")) / Decimal(10_000)
            self.price = (self.price * (1 + step)).quantize(Q8)
            self.history.append((int(time.time() * 1000), self.price))
        self.last_tick += ticks * self.tick_s
        return ticks

    def bid_ask(self) -> tuple[Decimal, Decimal]:
        half = self.price * SPREAD_BPS / Decimal(20_000)
        return (self.price - half).quantize(Q8), (self.price + half).quantize(Q8)


class _Order:
    def __init__(self, oid: str, req: OrderRequest, ts: int) -> None:
        self.id, self.req, self.ts = oid, req, ts
        self.status = "open"
        self.filled = Decimal(0)
        self.cost = Decimal(0)
        self.fee = Decimal(0)

    def state(self, quote: str) -> OrderState:
        r = self.req
        avg = (self.cost / self.filled).quantize(Q8) if self.filled else None
        return OrderState(
            id=self.id, client_order_id=r.client_order_id, symbol=r.symbol, side=r.side,
            type=r.type, status=self.status, amount=r.amount, filled=self.filled,  # type: ignore[arg-type]
            remaining=r.amount - self.filled, price=r.price, average=avg, fee=self.fee,
            fee_currency=quote, timestamp_ms=self.ts,
        )


class PaperExchange:
    """One paper account. Implements the ``Exchange`` port."""

    def __init__(self, name: str = "paper", config: ExchangeConfig | None = None,
                 *, tick_s: float = 0.05, seed: int = 7,
                 placement: PlacementPolicy | None = None) -> None:
        cfg = config or ExchangeConfig()
        self.name = name
        self.fill_ratio = cfg.paper_fill_ratio
        prices = dict(DEFAULT_PRICES, **cfg.paper_prices)
        self._books = {s: _Book(s, p, tick_s, seed + i) for i, (s, p) in enumerate(prices.items())}
        self._balances = dict(DEFAULT_BALANCES, **cfg.paper_balances)
        self._orders: dict[str, _Order] = {}
        self._open: dict[str, _Order] = {}
        self._by_cid: dict[str, list[_Order]] = {}
        self._ids = itertools.count(1)
        self._used: dict[str, Decimal] = {}
        """What the open orders hold, per asset (kept current by ``_settle``)."""
        self._held: dict[str, tuple[str, Decimal]] = {}
        self._reach: dict[str, tuple[Decimal, Decimal] | None] = {}
        """Per symbol: (highest open buy limit, lowest open sell limit); None: a market
        order rests, match every tick. Dropped whenever an open order changes."""
        self._placement = placement or PlacementPolicy(lookups=1, lookup_delay_s=0)
        self.listeners: list[Callable[[OrderState], None]] = []
        """Called with an order's state whenever it changes (the simulators' streams)."""

    settle_s = 0.0  # in-process: a create is done when the call returns

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # -- market data ---------------------------------------------------------
    def _book(self, symbol: str) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            raise InvalidOrder(f"unknown symbol {symbol}")
        if book.advance():
            self._match(book)
        return book

    async def get_ticker_price(self, symbol: str) -> Decimal:
        return self._book(symbol).price

    async def get_market_rules(self, symbol: str) -> MarketRules:
        base, quote = symbol.split("/")
        self._book(symbol)
        return MarketRules(symbol=symbol, base=base, quote=quote, amount_step=Q8,
                           price_step=Decimal("0.01"), min_amount=Q8, min_notional=Decimal(1))

    async def fetch_ohlcv(self, symbol: str, timeframe: str = "1m",
                          limit: int = 100) -> list[Candle]:
        span_ms = {"1s": 1000, "1m": 60_000, "5m": 300_000, "1h": 3_600_000}.get(timeframe)
        if span_ms is None:
            raise InvalidOrder(f"unsupported timeframe {timeframe}")
        candles: dict[int, list[Decimal]] = {}
        for ts, price in self._book(symbol).history:
            candles.setdefault(ts - ts % span_ms, []).append(price)
        return [Candle(ts, ps[0], max(ps), min(ps), ps[-1], Decimal(0))
                for ts, ps in sorted(candles.items())][-limit:]

    # -- trading ---------------------------------------------------------------
    async def execute_trade(self, request: OrderRequest | None = None, *,
                            assume_absent: bool = False, symbol: str | None = None,
                            side: str | None = None,
                            amount: Decimal | float | str | None = None,
                            type: str = "market", price: Decimal | float | str | None = None,
                            client_order_id: str | None = None) -> OrderState:
        request = order_request(request, symbol=symbol, side=side, amount=amount, type=type,
                                price=price, client_order_id=client_order_id)
        return await place_once(self, request, self._placement, assume_absent=assume_absent)

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        self._book(symbol)
        matches = self._by_cid.get(client_order_id)
        return matches[-1].state(self._quote(symbol)) if matches else None

    async def create_order(self, req: OrderRequest) -> OrderState:
        book = self._book(req.symbol)
        if req.amount <= 0:
            raise InvalidOrder("amount must be positive")
        if req.type == "limit" and (req.price is None or req.price <= 0):
            raise InvalidOrder("limit order needs a positive price")
        if any(o.status == "open" for o in self._by_cid.get(req.client_order_id, ())):
            raise InvalidOrder("Duplicate order sent.")
        self._check_funds(req, book)
        order = _Order(f"P{next(self._ids)}", req, int(time.time() * 1000))
        self._orders[order.id] = order
        self._open[order.id] = order
        self._by_cid.setdefault(req.client_order_id, []).append(order)
        self._fill(order, book, taker=True)
        if order.status == "open" and req.time_in_force in ("IOC", "FOK"):
            order.status = "canceled" if order.filled or req.time_in_force == "IOC" else "expired"
        self._settle(order)
        self._changed(order)
        return order.state(self._quote(req.symbol))

    def _settle(self, order: _Order) -> None:
        """After every change of an order: its hold, and whether it is still open."""
        self._reach.pop(order.req.symbol, None)
        old = self._held.pop(order.id, None)
        if old is not None:
            self._used[old[0]] -= old[1]
        if order.status == "open":
            new = self._hold(order)
            self._held[order.id] = new
            self._used[new[0]] = self._used.get(new[0], Decimal(0)) + new[1]
        else:
            self._open.pop(order.id, None)

    def _changed(self, order: _Order) -> None:
        if self.listeners:
            state = order.state(self._quote(order.req.symbol))
            for listener in self.listeners:
                listener(state)

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        self._book(symbol)
        order = self._orders.get(order_id)
        if order is None or order.req.symbol != symbol:
            raise OrderNotFound(f"order {order_id} not found")
        return order.state(self._quote(symbol))

    async def cancel_order(self, symbol: str, order_id: str) -> OrderState:
        state = await self.get_order(symbol, order_id)
        if state.status != "open":
            return state
        self._orders[order_id].status = "canceled"
        self._settle(self._orders[order_id])
        self._changed(self._orders[order_id])
        return self._orders[order_id].state(self._quote(symbol))

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        for book in self._books.values():
            self._book(book.symbol)
        return [o.state(self._quote(o.req.symbol)) for o in self._open.values()
                if symbol in (None, o.req.symbol)]

    async def get_order_history(self, symbol: str, limit: int = 100) -> list[OrderState]:
        self._book(symbol)
        return [o.state(self._quote(symbol)) for o in self._orders.values()
                if o.req.symbol == symbol][-limit:]

    # -- account ---------------------------------------------------------------
    async def get_balances(self) -> dict[str, Balance]:
        used = self._reserved()
        return {a: Balance(asset=a, free=t - used.get(a, Decimal(0)), used=used.get(a, Decimal(0)),
                           total=t) for a, t in self._balances.items()}

    async def get_portfolio_value(self, quote: str = "USDT") -> Decimal:
        total = Decimal(0)
        for asset, amount in self._balances.items():
            if asset == quote:
                total += amount
            elif f"{asset}/{quote}" in self._books:
                total += amount * await self.get_ticker_price(f"{asset}/{quote}")
        return total

    async def get_trading_fees(self, symbols: Sequence[str] | None = None
                               ) -> dict[str, TradingFee]:
        return {s: TradingFee(symbol=s, maker=FEE_RATE, taker=FEE_RATE)
                for s in (symbols if symbols is not None else self._books)}

    async def get_positions(self) -> list[Position]:
        out = Positions()
        for symbol in self._books:
            base = symbol.split("/")[0]
            amount = self._balances.get(base, Decimal(0))
            out.append(Position(symbol=symbol, side="long" if amount > 0 else "flat",
                                amount=amount))
        return out

    # -- matching ----------------------------------------------------------------
    @staticmethod
    def _quote(symbol: str) -> str:
        return symbol.split("/")[1]

    def _reserved(self) -> dict[str, Decimal]:
        return self._used

    def _hold(self, o: _Order) -> tuple[str, Decimal]:
        """(asset, amount) an open order holds: its unfilled rest (buys: at its price)."""
        base, quote = o.req.symbol.split("/")
        rest = o.req.amount - o.filled
        if o.req.side == "sell":
            return base, rest
        px = o.req.price or self._books[o.req.symbol].price
        return quote, rest * px * (1 + FEE_RATE)

    def _check_funds(self, req: OrderRequest, book: _Book) -> None:
        base, quote = req.symbol.split("/")
        used = self._reserved()
        if req.side == "sell":
            free = self._balances.get(base, Decimal(0)) - used.get(base, Decimal(0))
            need = req.amount
            asset = base
        else:
            free = self._balances.get(quote, Decimal(0)) - used.get(quote, Decimal(0))
            need = req.amount * (req.price or book.bid_ask()[1]) * (1 + FEE_RATE)
            asset = quote
        if need > free:
            raise InsufficientFunds(f"need {need:.8f} {asset}, free {free:.8f}")

    def _limits_reach(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        if symbol not in self._reach:
            top, bottom = Decimal("-Infinity"), Decimal("Infinity")
            reach: tuple[Decimal, Decimal] | None = None
            for o in self._open.values():
                req = o.req
                if req.symbol != symbol:
                    continue
                if req.type != "limit" or req.price is None:
                    break
                if req.side == "buy":
                    top = max(top, req.price)
                else:
                    bottom = min(bottom, req.price)
            else:
                reach = (top, bottom)
            self._reach[symbol] = reach
        return self._reach[symbol]

    def _match(self, book: _Book) -> None:
        bid, ask = book.bid_ask()
        reach = self._limits_reach(book.symbol)
        if reach is not None and ask > reach[0] and bid < reach[1]:
            return  # no open order of this book can fill at this price
        for order in list(self._open.values()):
            req = order.req
            if req.symbol != book.symbol or (req.type == "limit" and req.price is not None and (
                    ask > req.price if req.side == "buy" else bid < req.price)):
                continue  # another book, or a limit the price has not reached
            filled = order.filled
            self._fill(order, book, taker=False)
            self._settle(order)
            if order.filled != filled:
                self._changed(order)

    def _fill(self, order: _Order, book: _Book, *, taker: bool) -> None:
        req = order.req
        bid, ask = book.bid_ask()
        market_px = ask if req.side == "buy" else bid
        if req.type == "limit":
            assert req.price is not None
            crosses = market_px <= req.price if req.side == "buy" else market_px >= req.price
            if not crosses:
                return
            px = market_px if taker else req.price
        else:
            px = market_px
        rest = req.amount - order.filled
        if req.time_in_force == "FOK" and self.fill_ratio < 1:
            return
        chunk = rest if req.time_in_force == "FOK" else min(
            rest, (req.amount * self.fill_ratio).quantize(Q8, rounding=ROUND_DOWN) or rest)
        cost = chunk * px
        fee = (cost * FEE_RATE).quantize(Q8)
        base, quote = req.symbol.split("/")
        sign = 1 if req.side == "buy" else -1
        self._balances[base] = self._balances.get(base, Decimal(0)) + sign * chunk
        self._balances[quote] = self._balances.get(quote, Decimal(0)) - sign * cost - fee
        order.filled += chunk
        order.cost += cost
        order.fee += fee
        if order.filled >= req.amount:
            order.status = "closed"
