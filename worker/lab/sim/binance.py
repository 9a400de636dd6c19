"""A local server speaking enough of Binance's spot REST API for ccxt.

Endpoints under /api/v3: ping, time, exchangeInfo, ticker/24hr, ticker/price,
klines, account, order (POST/GET/DELETE, by orderId or origClientOrderId),
openOrders, allOrders, myTrades, /sapi/v1/asset/tradeFee; USDⓈ-M futures under /fapi
(binance_futures), user-data streams with stream faults (binance_stream). Signed
calls are checked like Binance does:
X-MBX-APIKEY, HMAC-SHA256 ``signature`` over the query (GET/DELETE) or body
(POST), ``timestamp`` within ``recvWindow``. Matching is the paper engine, one
book per API key. Faults come from ``worker.lab.sim.faults``; the admin API
(/_admin/faults, /_admin/stream_faults, /_admin/stats, /_admin/price) lets other
processes drive it.

Run: ``python -m worker.lab.sim.binance --port 9100 --key K --secret S``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from worker.errors import InsufficientFunds, InvalidOrder, OrderNotFound
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.paper import PaperExchange
from worker.lab.sim.binance_futures import FuturesApi
from worker.lab.sim.binance_json import (
    BinanceError,
    exchange_info,
    order_json,
    ticker_json,
    trade_json,
)
from worker.lab.sim.binance_limits import Limits, weight_of
from worker.lab.sim.binance_stream import BinanceStreams
from worker.lab.sim.server import SimError, SimServer, paper_config, serve_main

_UNKNOWN = {"code": -1007, "msg": "Timeout waiting for response from backend server. Send "
                                  "status unknown; execution status unknown."}


def _group(request: web.Request) -> str:
    path = request.path
    if path.endswith("/order"):
        return {"POST": "create", "DELETE": "cancel"}.get(request.method, "query")
    if path.endswith(("/openOrders", "/allOrders", "/myTrades", "/userTrades",
                      "/positionRisk")):
        return "query"
    if path.endswith(("/userDataStream", "/listenKey")):
        return "account"
    if path.endswith(("/account", "/balance", "/leverage", "/leverageBracket",
                      "/commissionRate", "/accountConfig", "/tradeFee")):
        return "account"
    return "market"


class BinanceSim(SimServer):
    name = "binance"
    unmetered = ("/_admin", "/ws", "/private/ws")

    def __init__(self, keys: dict[str, str], *, fill_ratio: str = "1",
                 balances: dict[str, Decimal] | None = None) -> None:
        super().__init__(keys)
        cfg = paper_config(fill_ratio, balances)
        self.books = {key: PaperExchange("binance-sim", cfg, tick_s=0.02) for key in keys}
        self.futures = FuturesApi(self, {key: PaperExchange("binance-fapi", cfg, tick_s=0.02)
                                         for key in keys})
        self.streams = BinanceStreams(self)
        self.limits = Limits()

    # -- plumbing ------------------------------------------------------------------
    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/api/v3/ping", self.ping)
        r.add_get("/api/v3/time", self.server_time)
        r.add_get("/api/v3/exchangeInfo", self.exchange_info)
        r.add_get("/api/v3/ticker/24hr", self.ticker)
        r.add_get("/api/v3/ticker/price", self.ticker)
        r.add_get("/api/v3/klines", self.klines)
        r.add_get("/api/v3/account", self.account)
        r.add_post("/api/v3/order", self.create)
        r.add_get("/api/v3/order", self.query)
        r.add_delete("/api/v3/order", self.cancel)
        r.add_get("/api/v3/openOrders", self.open_orders)
        r.add_get("/api/v3/allOrders", self.all_orders)
        r.add_get("/api/v3/myTrades", self.my_trades)
        r.add_get("/sapi/v1/asset/tradeFee", self.trade_fee)
        self.futures.routes(r)
        self.streams.routes(r)
        r.add_post("/_admin/price", self.set_price)

    def group(self, request: web.Request) -> str:
        return _group(request)

    def all_books(self) -> Iterator[PaperExchange]:
        yield from self.books.values()
        yield from self.futures.books.values()

    def stats_extra(self) -> dict[str, Any]:
        return {"weight": self.limits.total_weight}

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    def fault_answer(self, kind: str) -> web.Response:
        if kind in ("500", "503"):
            return self._json({"code": -1001, "msg": "Internal error."}, int(kind))
        if kind == "429":
            return self._json({"code": -1003, "msg": "Too many requests."}, 429)
        if kind == "500_after":
            return self._json({"code": -1001, "msg": "Internal error; unable to process."},
                              500)
        return self._json(_UNKNOWN, 408)  # unknown, unknown_after

    def error_answer(self, exc: SimError) -> web.Response:
        assert isinstance(exc, BinanceError)
        return self._json({"code": exc.code, "msg": exc.msg}, exc.status)

    async def answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Spends the request's weight first (429 + Retry-After past the limit) and
        reports the usage headers, as Binance does."""
        query = request.query
        used, retry = self.limits.spend(weight_of(
            request.method, request.path, "symbol" in query or request.method == "POST",
            query.get("symbols", "").count(",") + 1))
        if retry is not None:
            return web.json_response(
                {"code": -1003, "msg": "Too much request weight used; current limit is "
                 f"{self.limits.weight_limit} request weight per 1 MINUTE."}, status=429,
                headers={"Retry-After": str(int(retry) + 1), "X-MBX-USED-WEIGHT-1M": str(used)})
        response = await self.with_faults(request, handler)
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        if (request.method == "POST" and request.path.endswith("/order")
                and response.status == 200):
            count_10s, count_1d = self.limits.order(request.headers.get("X-MBX-APIKEY", ""))
            response.headers["X-MBX-ORDER-COUNT-10S"] = str(count_10s)
            response.headers["X-MBX-ORDER-COUNT-1D"] = str(count_1d)
        return response

    async def _signed(self, request: web.Request) -> tuple[PaperExchange, dict[str, str]]:
        key = request.headers.get("X-MBX-APIKEY", "")
        if key not in self.keys:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        raw = (await request.text()) if request.method == "POST" else request.query_string
        payload, _, signature = raw.rpartition("&signature=")
        expected = hmac.new(self.keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload))
        window = int(params.get("recvWindow", "5000"))
        now, stamp = self.now_ms(), int(params.get("timestamp", "0"))
        if stamp >= now + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of "
                                           "the server's time.")
        if now - stamp > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the "
                                           "recvWindow.")
        return self.books[key], params

    def _symbol(self, book: PaperExchange, market_id: str | None) -> str:
        for symbol in book._books:
            if symbol.replace("/", "") == market_id:
                return symbol
        raise BinanceError(400, -1121, "Invalid symbol.")

    # -- public --------------------------------------------------------------------
    async def ping(self, _: web.Request) -> web.Response:
        return self._json({})

    def now_ms(self) -> int:
        return _ms() + self.clock_offset_ms

    async def server_time(self, _: web.Request) -> web.Response:
        return self._json({"serverTime": self.now_ms()})

    async def exchange_info(self, _: web.Request) -> web.Response:
        return self._json(exchange_info(next(iter(self.books.values()))._books))

    async def ticker(self, request: web.Request) -> web.Response:
        book = next(iter(self.books.values()))
        if "symbols" in request.query:  # a JSON list: ["BTCUSDT","ETHUSDT"]
            ids = [i.strip(' "') for i in request.query["symbols"].strip("[]").split(",")]
            symbols = [self._symbol(book, i) for i in ids]
            return self._json([ticker_json(s, await book.get_ticker_price(s))
                               for s in symbols])
        symbol = self._symbol(book, request.query.get("symbol"))
        return self._json(ticker_json(symbol, await book.get_ticker_price(symbol)))

    async def klines(self, request: web.Request) -> web.Response:
        book = next(iter(self.books.values()))
        symbol = self._symbol(book, request.query.get("symbol"))
        candles = await book.fetch_ohlcv(symbol, request.query.get("interval", "1m"),
                                         int(request.query.get("limit", "500")))
        return self._json([[c.timestamp_ms, str(c.open), str(c.high), str(c.low), str(c.close),
                            str(c.volume), c.timestamp_ms + 59_999, "0", 0, "0", "0", "0"]
                           for c in candles])

    # -- private -------------------------------------------------------------------
    async def account(self, request: web.Request) -> web.Response:
        book, _ = await self._signed(request)
        balances = await book.get_balances()
        return self._json({"makerCommission": 10, "takerCommission": 10, "canTrade": True,
                           "canWithdraw": True, "canDeposit": True, "updateTime": _ms(),
                           "accountType": "SPOT", "permissions": ["SPOT"],
                           "balances": [{"asset": a, "free": str(b.free), "locked": str(b.used)}
                                        for a, b in balances.items()]})

    async def create(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        symbol = self._symbol(book, p.get("symbol"))
        try:
            req = OrderRequest(
                symbol=symbol, side=p["side"].lower(), type=p["type"].lower(),  # type: ignore[arg-type]
                amount=Decimal(p["quantity"]),
                price=Decimal(p["price"]) if p.get("price") else None,
                client_order_id=p.get("newClientOrderId") or f"sim-{_ms()}",
                time_in_force=p.get("timeInForce", "GTC"))  # type: ignore[arg-type]
        except (KeyError, ArithmeticError) as exc:
            raise BinanceError(400, -1102, f"Mandatory parameter missing: {exc}") from exc
        if req.amount * (req.price or await book.get_ticker_price(symbol)) < Decimal(5):
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        try:
            state = await book.create_order(req)
        except InsufficientFunds as exc:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested "
                                           "action.") from exc
        except InvalidOrder as exc:
            raise BinanceError(400, -2010, str(exc)) from exc
        return self._json(order_json(state, full=True))

    async def _order(self, book: PaperExchange, p: dict[str, str], code: int,
                     msg: str) -> OrderState:
        symbol = self._symbol(book, p.get("symbol"))
        if p.get("orderId"):
            try:
                return await book.get_order(symbol, f"P{p['orderId']}")
            except OrderNotFound as exc:
                raise BinanceError(400, code, msg) from exc
        state = await book.find_order(symbol, p.get("origClientOrderId", ""))
        if state is None:
            raise BinanceError(400, code, msg)
        return state

    async def query(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        return self._json(order_json(await self._order(book, p, -2013, "Order does not exist.")))

    async def cancel(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        state = await self._order(book, p, -2011, "Unknown order sent.")
        if state.is_terminal:
            raise BinanceError(400, -2011, "Unknown order sent.")
        return self._json(order_json(await book.cancel_order(state.symbol, state.id)))

    async def open_orders(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        symbol = self._symbol(book, p["symbol"]) if p.get("symbol") else None
        return self._json([order_json(s) for s in await book.get_open_orders(symbol)])

    async def all_orders(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        symbol = self._symbol(book, p.get("symbol"))
        limit = int(p.get("limit", "500"))
        return self._json([order_json(s) for s in await book.get_order_history(symbol, limit)])

    async def my_trades(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        symbol = self._symbol(book, p.get("symbol"))
        states = await book.get_order_history(symbol, 10_000)
        if p.get("orderId"):
            states = [s for s in states if s.id == f"P{p['orderId']}"]
        return self._json([trade_json(s) for s in states if s.filled > 0])

    async def trade_fee(self, request: web.Request) -> web.Response:
        book, p = await self._signed(request)
        symbols = [p["symbol"]] if p.get("symbol") else [s.replace("/", "") for s in book._books]
        return self._json([{"symbol": s, "makerCommission": "0.001", "takerCommission": "0.001"}
                           for s in symbols])

    # -- admin -----------------------------------------------------------------------
    async def set_price(self, request: web.Request) -> web.Response:
        """``{"symbol": "BTC/USDT", "price": "30000"}``: moves the price of every book
        (spot and futures) there (the random walk goes on from it); resting limits that
        cross fill."""
        body = await request.json()
        self.move_price(body["symbol"], Decimal(str(body["price"])))
        return self._json({"ok": True})

    async def open_client_ids(self) -> list[str]:
        """Client order ids of every order still open, over all books."""
        out = []
        for book in self.books.values():
            out += [o.client_order_id or "" for o in await book.get_open_orders()]
        return out


def _ms() -> int:
    return int(time.time() * 1000)


def main() -> None:
    def build(args: argparse.Namespace, keys: dict[str, str]) -> SimServer:
        sim = BinanceSim(keys, fill_ratio=args.fill_ratio)
        if args.enforce_weight:
            sim.limits.enforce, sim.limits.weight_limit = True, args.enforce_weight
        return sim

    serve_main(__doc__, 9100, build, lambda parser: parser.add_argument(
        "--enforce-weight", type=int, default=0,
        help="answer 429 + Retry-After beyond this weight per minute (0: off)"))


if __name__ == "__main__":
    main()
