"""The order desk of one simulated Bybit account: validation with Bybit's codes,
create/cancel on per-category paper books, and when closed orders become visible."""

from __future__ import annotations

import time
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from worker.errors import InsufficientFunds, InvalidOrder
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.paper import PaperExchange
from worker.lab.sim import bybit_json as bj
from worker.lab.sim.server import SimError


class BybitError(SimError):
    """Answered as HTTP 200 with this ``retCode``/``retMsg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


_TIF = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "PostOnly": "GTC"}


def _decimal(p: dict[str, Any], key: str) -> Decimal:
    try:
        value = Decimal(str(p[key]))
    except (KeyError, InvalidOperation) as exc:
        raise BybitError(10001, f"params error: {key} invalid") from exc
    if not value.is_finite() or value <= 0:
        raise BybitError(10001, f"params error: {key} invalid")
    return value


class OrderDesk:
    def __init__(self, books: dict[str, PaperExchange]) -> None:
        self.books = books
        self.leverage: dict[str, str] = {}
        self.restarted_at = 0.0
        self._closed_at: dict[tuple[str, str], float] = {}

    @staticmethod
    def symbol(book: PaperExchange, market_id: Any) -> str:
        for symbol in book._books:
            if bj.market_id(symbol) == market_id:
                return symbol
        raise BybitError(10001, "params error: symbol invalid")

    def book(self, category: Any) -> PaperExchange:
        book = self.books.get(str(category))
        if book is None:
            raise BybitError(10001, f"params error: category {category} invalid")
        return book

    # -- create / cancel ------------------------------------------------------------
    async def create(self, p: dict[str, Any]) -> OrderState:
        category = str(p.get("category"))
        book = self.book(category)
        symbol = self.symbol(book, p.get("symbol"))
        side, kind = str(p.get("side", "")).lower(), str(p.get("orderType", "")).lower()
        if side not in ("buy", "sell") or kind not in ("market", "limit"):
            raise BybitError(10001, "params error: side or orderType invalid")
        link = str(p.get("orderLinkId") or f"sim-{time.time_ns()}")
        if any(link in b._by_cid for b in self.books.values()):
            raise BybitError(110072, "OrderLinkedID is duplicate")
        qty = _decimal(p, "qty")
        price = _decimal(p, "price") if kind == "limit" else None
        last = await book.get_ticker_price(symbol)
        spot = category == "spot"
        quote_unit = spot and kind == "market" and p.get("marketUnit", (
            "quoteCoin" if side == "buy" else "baseCoin")) == "quoteCoin"
        if quote_unit:
            qty = (qty / last).quantize(bj.SPOT_STEP, rounding=ROUND_DOWN)
        step = bj.SPOT_STEP if spot else bj.LINEAR_STEP
        if qty % step:
            raise (BybitError(170137, "Order quantity has too many decimals.") if spot
                   else BybitError(10001, "Qty invalid"))
        if qty < (bj.SPOT_MIN_QTY if spot else bj.LINEAR_STEP):
            raise (BybitError(170136, "Order quantity is lower than the minimum.") if spot
                   else BybitError(10001, "The number of contracts exceeds minimum limit "
                                          "allowed"))
        if price is not None and price % bj.TICK:
            raise (BybitError(170134, "Order price has too many decimals.") if spot
                   else BybitError(10001, "price invalid"))
        notional = qty * (price or last)
        if spot and notional < bj.SPOT_MIN_AMT:
            raise BybitError(170140, "Order value exceeded lower limit.")
        if not spot and notional < bj.LINEAR_MIN_NOTIONAL:
            raise BybitError(110094, "Order does not meet minimum order value 5USDT")
        tif = _TIF.get(str(p.get("timeInForce") or "GTC"))
        if tif is None:
            raise BybitError(10001, "params error: timeInForce invalid")
        req = OrderRequest(symbol=symbol, side=side, type=kind, amount=qty,  # type: ignore[arg-type]
                           price=price, client_order_id=link, time_in_force=tif)  # type: ignore[arg-type]
        try:
            state = await book.create_order(req)
        except InsufficientFunds as exc:
            raise (BybitError(170131, "Insufficient balance.") if spot
                   else BybitError(110007, "ab not enough for new order")) from exc
        except InvalidOrder as exc:
            raise BybitError(10001, f"params error: {exc}") from exc
        self._stamp(category, state)
        return state

    async def cancel(self, p: dict[str, Any]) -> OrderState:
        category = str(p.get("category"))
        spot = category == "spot"
        missing = (BybitError(170213, "Order does not exist.") if spot
                   else BybitError(110001, "order not exists or too late to cancel"))
        found = [s for s in await self.matching(p) if not s.is_terminal]
        if not (p.get("orderId") or p.get("orderLinkId")) or not found:
            raise missing
        book = self.book(category)
        state = await book.cancel_order(found[0].symbol, found[0].id)
        self._stamp(category, state)
        return state

    # -- lookups ----------------------------------------------------------------------
    async def all_orders(self, category: str) -> list[OrderState]:
        book = self.book(category)
        await book.get_open_orders()  # advances every price walk: fills resting orders
        states = [o.state(o.req.symbol.split("/")[1]) for o in book._orders.values()]
        for s in states:
            self._stamp(category, s)
        return states

    async def matching(self, p: dict[str, Any]) -> list[OrderState]:
        """Orders of ``p['category']`` filtered by symbol/orderId/orderLinkId, newest first."""
        category = str(p.get("category"))
        book = self.book(category)
        states = await self.all_orders(category)
        if p.get("symbol"):
            symbol = self.symbol(book, p["symbol"])
            states = [s for s in states if s.symbol == symbol]
        if p.get("orderId"):
            states = [s for s in states if bj.order_id(category, s) == p["orderId"]]
        elif p.get("orderLinkId"):
            states = [s for s in states if s.client_order_id == p["orderLinkId"]]
        return states[::-1]

    def _stamp(self, category: str, state: OrderState) -> None:
        if state.is_terminal:
            self._closed_at.setdefault((category, state.id), time.monotonic())

    def in_realtime(self, category: str, state: OrderState) -> bool:
        """A closed order stays in realtime until the exchange restarts."""
        closed = self._closed_at.get((category, state.id))
        return closed is None or closed > self.restarted_at

    def in_history(self, category: str, state: OrderState, delay_ms: int) -> bool:
        closed = self._closed_at.get((category, state.id))
        return closed is not None and (time.monotonic() - closed) * 1000 >= delay_ms
