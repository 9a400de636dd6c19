"""A local server speaking enough of Bybit's v5 REST API for the real ccxt client.

Public: /v5/market/{time,instruments-info,tickers,kline}. Private (one unified
trading account per API key): /v5/user/query-api, /v5/asset/coin/query-info, /v5/account/{info,
wallet-balance,fee-rate}, /v5/order/{create,cancel,realtime,history},
/v5/execution/list, /v5/position/{list,set-leverage}. Categories ``spot`` and
``linear`` (USDT perpetuals), each its own paper book.

As Bybit documents it:
* auth: ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-RECV-WINDOW`` (default
  5000) and ``X-BAPI-SIGN`` = hex HMAC-SHA256 of timestamp + key + recv_window +
  (query string | raw JSON body); accepted while
  ``server_time - recv_window <= timestamp < server_time + 1000``;
* errors are HTTP 200 with a non-zero ``retCode`` (10001 params, 10002 time,
  10003 key, 10004 sign, 10006 rate limit, 10016 system error, 110001 order not
  found, 110007/170131 insufficient balance, 110072 duplicate orderLinkId,
  170136/170137/170134/170140/110094 filters);
* a create answers only ``orderId`` and ``orderLinkId`` (no status);
* an orderLinkId is never reusable;
* /v5/order/realtime lists open orders, and closed ones only when asked by
  orderId/orderLinkId or ``openOnly=1``; after a restart (``/_admin/restart``)
  it forgets closed orders: only history knows them;
* /v5/order/history shows an order only ``history_delay_ms`` after it closed.

The private WebSocket stream (``/v5/private``) is ``bybit_stream``. Faults come from
``worker.lab.sim.faults`` (admin: /_admin/faults, /_admin/stream_faults, /_admin/stats).
Run: ``python -m worker.lab.sim.bybit --port 9200 --key K --secret S``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from worker.exchange.models import OrderState
from worker.exchange.paper import PaperExchange
from worker.lab.sim import bybit_json as bj
from worker.lab.sim.bybit_orders import BybitError, OrderDesk
from worker.lab.sim.bybit_stream import BybitStreams
from worker.lab.sim.positions import net_positions
from worker.lab.sim.server import SimError, SimServer, paper_config, serve_main

CATEGORIES = ("spot", "linear")


def _group(request: web.Request) -> str:
    path = request.path
    if path.endswith("/order/create"):
        return "create"
    if path.endswith("/order/cancel"):
        return "cancel"
    if path.startswith(("/v5/order", "/v5/execution", "/v5/position")):
        return "query"
    if path.startswith(("/v5/account", "/v5/user", "/v5/asset")):
        return "account"
    return "market"


class BybitSim(SimServer):
    name = "bybit"
    unmetered = ("/_admin", "/v5/private")

    def __init__(self, keys: dict[str, str], *, fill_ratio: str = "1",
                 balances: dict[str, Decimal] | None = None,
                 history_delay_ms: int = 0) -> None:
        super().__init__(keys)
        cfg = paper_config(fill_ratio, balances)
        self.desks = {key: OrderDesk({c: PaperExchange(f"bybit-{c}", cfg, tick_s=0.02)
                                      for c in CATEGORIES}) for key in keys}
        self.history_delay_ms = history_delay_ms
        self.streams = BybitStreams(self)

    # -- plumbing ------------------------------------------------------------------
    def routes(self, r: web.UrlDispatcher) -> None:
        for path, handler in (
                ("/v5/market/time", self.server_time),
                ("/v5/market/instruments-info", self.instruments),
                ("/v5/market/tickers", self.tickers), ("/v5/market/kline", self.kline),
                ("/v5/user/query-api", self.query_api), ("/v5/asset/coin/query-info", self.coins),
                ("/v5/account/info", self.account_info),
                ("/v5/account/wallet-balance", self.wallet), ("/v5/account/fee-rate", self.fees),
                ("/v5/order/realtime", self.realtime), ("/v5/order/history", self.history),
                ("/v5/execution/list", self.executions), ("/v5/position/list", self.positions)):
            r.add_get(path, handler)
        for path, handler in (
                ("/v5/order/create", self.create), ("/v5/order/cancel", self.cancel),
                ("/v5/position/set-leverage", self.set_leverage),
                ("/_admin/restart", self.restart)):
            r.add_post(path, handler)
        self.streams.routes(r)

    def group(self, request: web.Request) -> str:
        return _group(request)

    def all_books(self) -> Iterator[PaperExchange]:
        for desk in self.desks.values():
            yield from desk.books.values()

    def admin_extra(self, body: dict[str, Any]) -> None:
        if "history_delay_ms" in body:
            self.history_delay_ms = int(body["history_delay_ms"])

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response(bj.envelope(result))

    @staticmethod
    def _err(code: int, msg: str) -> web.Response:
        return web.json_response(bj.envelope(None, code, msg))

    def fault_answer(self, kind: str) -> web.Response:
        if kind in ("500", "503"):
            return web.Response(status=int(kind), text="<html>Bad Gateway</html>")
        if kind == "429":
            return self._err(10006, "Too many visits. Exceeded the API Rate Limit.")
        if kind == "500_after":
            return web.Response(status=500, text="<html>Internal Server Error</html>")
        return self._err(10016, "Internal server error.")  # unknown, unknown_after

    def error_answer(self, exc: SimError) -> web.Response:
        assert isinstance(exc, BybitError)
        return self._err(exc.code, exc.msg)

    async def _signed(self, request: web.Request) -> tuple[OrderDesk, dict[str, Any]]:
        key = request.headers.get("X-BAPI-API-KEY", "")
        if key not in self.keys:
            raise BybitError(10003, "API key is invalid.")
        stamp = request.headers.get("X-BAPI-TIMESTAMP", "")
        window = request.headers.get("X-BAPI-RECV-WINDOW", "5000")
        payload = (await request.text()) if request.method == "POST" else request.query_string
        expected = hmac.new(self.keys[key].encode(), (stamp + key + window + payload).encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-BAPI-SIGN", "")):
            raise BybitError(10004, "error sign! origin_string[" + stamp + key + window + "]")
        try:
            stamp_ms, window_ms = int(stamp), int(window)
        except ValueError as exc:
            raise BybitError(10001, "invalid timestamp or recv_window") from exc
        now = bj.ms() + self.clock_offset_ms
        if not now - window_ms <= stamp_ms < now + 1000:
            raise BybitError(10002, "invalid request, please check your server timestamp or "
                                    f"recv_window param. req_timestamp[{stamp}],"
                                    f"server_timestamp[{now}],recv_window[{window}]")
        params: dict[str, Any]
        if request.method == "POST":
            try:
                params = json.loads(payload or "{}")
            except ValueError as exc:
                raise BybitError(10001, "request body is not valid JSON") from exc
        else:
            params = dict(parse_qsl(payload))
        return self.desks[key], params

    def _any_book(self, category: str | None) -> PaperExchange:
        if category not in CATEGORIES:
            raise BybitError(10001, f"category {category!r} is not supported")
        return next(iter(self.desks.values())).books[category]

    # -- public --------------------------------------------------------------------
    async def server_time(self, _: web.Request) -> web.Response:
        now = time.time_ns() + self.clock_offset_ms * 1_000_000
        return self._ok({"timeSecond": str(now // 10**9), "timeNano": str(now)})

    async def instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category")
        book = self._any_book(category)
        status = request.query.get("status")
        rows = [] if status == "PreLaunch" else [bj.instrument(category or "", s)
                                                 for s in book._books]
        return self._ok({"category": category, "list": rows, "nextPageCursor": ""})

    async def tickers(self, request: web.Request) -> web.Response:
        category = request.query.get("category")
        book = self._any_book(category)
        market_id = request.query.get("symbol")  # optional: without it, every symbol
        symbols = list(book._books) if market_id is None else [
            OrderDesk.symbol(book, market_id)]
        return self._ok({"category": category, "list": [
            bj.ticker(category or "", s, await book.get_ticker_price(s)) for s in symbols]})

    async def kline(self, request: web.Request) -> web.Response:
        category = request.query.get("category")
        book = self._any_book(category)
        symbol = OrderDesk.symbol(book, request.query.get("symbol"))
        frames = {"1": "1m", "5": "5m", "60": "1h"}
        candles = await book.fetch_ohlcv(symbol, frames.get(request.query.get("interval", "1"),
                                                            "1m"),
                                         int(request.query.get("limit", "200")))
        rows = [[str(c.timestamp_ms), *(format(v, "f") for v in (c.open, c.high, c.low, c.close,
                                                                 c.volume)), "0"]
                for c in reversed(candles)]
        return self._ok({"category": category, "symbol": bj.market_id(symbol), "list": rows})

    # -- account ---------------------------------------------------------------------
    async def query_api(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return self._ok({"id": "1", "note": "sim", "apiKey": request.headers["X-BAPI-API-KEY"],
                         "readOnly": 0, "secret": "", "permissions": {
                             "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                             "Wallet": ["AccountTransfer"]},
                         "ips": ["*"], "type": 1, "unified": 0, "uta": 1, "userID": 1,
                         "isMaster": True})

    async def coins(self, request: web.Request) -> web.Response:
        desk, _ = await self._signed(request)
        coins = await desk.books["spot"].get_balances()
        return self._ok({"rows": [{"name": c, "coin": c, "remainAmount": "1000000",
                                   "chains": []} for c in coins]})

    async def account_info(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return self._ok({"marginMode": "REGULAR_MARGIN", "updatedTime": str(bj.ms()),
                         "unifiedMarginStatus": 6, "dcpStatus": "OFF", "timeWindow": 10,
                         "smpGroup": 0, "isMasterTrader": False, "spotHedgingStatus": "OFF"})

    async def wallet(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        if p.get("accountType") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        spot = await desk.books["spot"].get_balances()
        return self._ok(bj.wallet({c: (b.total, b.used) for c, b in spot.items()}))

    async def fees(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        book = desk.book(p.get("category"))
        symbols = [OrderDesk.symbol(book, p["symbol"])] if p.get("symbol") else list(book._books)
        return self._ok({"list": [{"symbol": bj.market_id(s), "baseCoin": s.split("/")[0],
                                   "takerFeeRate": "0.001", "makerFeeRate": "0.001"}
                                  for s in symbols]})

    # -- orders ------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        state = await desk.create(p)
        return self._ok({"orderId": bj.order_id(p["category"], state),
                         "orderLinkId": state.client_order_id})

    async def cancel(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        state = await desk.cancel(p)
        return self._ok({"orderId": bj.order_id(p["category"], state),
                         "orderLinkId": state.client_order_id})

    async def realtime(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        category = p.get("category", "")
        states = await desk.matching(p)
        by_id = bool(p.get("orderId") or p.get("orderLinkId"))
        rows = [s for s in states if not s.is_terminal or (
            (by_id or p.get("openOnly") == "1") and desk.in_realtime(category, s))]
        return self._ok({"category": category, "nextPageCursor": "",
                         "list": [bj.order(category, s) for s in rows]})

    async def history(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        category = p.get("category", "")
        wanted = p.get("orderStatus")
        rows = [s for s in await desk.matching(p)
                if desk.in_history(category, s, self.history_delay_ms)]
        out = [bj.order(category, s) for s in rows]
        if wanted:
            out = [o for o in out if o["orderStatus"] in wanted.split(",")]
        return self._ok({"category": category, "nextPageCursor": "",
                         "list": out[: int(p.get("limit", "20"))]})

    async def executions(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        category = p.get("category", "")
        rows = [bj.execution(category, s) for s in await desk.matching(p) if s.filled > 0]
        return self._ok({"category": category, "nextPageCursor": "", "list": rows})

    async def positions(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        if p.get("category") != "linear":
            raise BybitError(10001, "category only support linear or inverse or option")
        book = desk.books["linear"]
        nets = net_positions(await desk.all_orders("linear"))
        symbols = [OrderDesk.symbol(book, p["symbol"])] if p.get("symbol") else sorted(nets)
        rows = [bj.position(s, *nets.get(s, (Decimal(0), None)),
                            await book.get_ticker_price(s)) for s in symbols]
        return self._ok({"category": "linear", "nextPageCursor": "", "list": rows})

    async def set_leverage(self, request: web.Request) -> web.Response:
        desk, p = await self._signed(request)
        OrderDesk.symbol(desk.book(p.get("category")), p.get("symbol"))
        if p.get("buyLeverage") == desk.leverage.get(p["symbol"]):
            raise BybitError(110043, "Set leverage not modified")
        desk.leverage[p["symbol"]] = p.get("buyLeverage", "1")
        return self._ok({})

    # -- admin -----------------------------------------------------------------------
    async def restart(self, _: web.Request) -> web.Response:
        """Simulate an exchange restart: realtime forgets every closed order."""
        for desk in self.desks.values():
            desk.restarted_at = time.monotonic()
        return web.json_response({"ok": True})


def order_state_of(sim: BybitSim, key: str, client_order_id: str) -> OrderState | None:
    """Test helper: the engine's view of an order, bypassing every API quirk."""
    for book in sim.desks[key].books.values():
        orders = book._by_cid.get(client_order_id)
        if orders:
            return orders[-1].state(orders[-1].req.symbol.split("/")[1])
    return None


def main() -> None:
    serve_main(__doc__, 9200, lambda args, keys: BybitSim(
        keys, fill_ratio=args.fill_ratio, history_delay_ms=args.history_delay_ms),
        lambda parser: parser.add_argument("--history-delay-ms", type=int, default=0))


if __name__ == "__main__":
    main()
