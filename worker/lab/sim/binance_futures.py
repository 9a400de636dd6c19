"""Binance USDⓈ-M futures (``/fapi``) on the Binance simulator, as ccxt uses it.

Public: /fapi/v1/{ping,time,exchangeInfo,ticker/24hr,ticker/price,klines}.
Signed: /fapi/v1/{order (POST/GET/DELETE), openOrders, allOrders, userTrades,
leverage, leverageBracket, commissionRate, accountConfig}, /fapi/v2|v3/{account, balance,
positionRisk}. One paper book per API key, separate from spot; positions
(one-way mode) are derived from fills. As Binance documents it: a client id is
refused (-4116) only while an order with it is open; the default
``newOrderRespType`` ACK answers status NEW with nothing executed (RESULT gives
the state after matching); notional below 5 -> -4164; margin -> -2019.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from worker.errors import InsufficientFunds, InvalidOrder
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.paper import PaperExchange
from worker.lab.sim.binance_json import BinanceError, order_json, ticker_json
from worker.lab.sim.positions import net_positions

if TYPE_CHECKING:
    from worker.lab.sim.binance import BinanceSim

MIN_NOTIONAL = Decimal(5)


def _s(d: Decimal | int | None) -> str:
    return "0" if d is None else format(d, "f")


def _now() -> int:
    return int(time.time() * 1000)


def exchange_info(symbols: list[str]) -> dict[str, Any]:
    rows = []
    for symbol in symbols:
        base, quote = symbol.split("/")
        rows.append({
            "symbol": base + quote, "pair": base + quote, "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
            "baseAsset": base, "quoteAsset": quote, "marginAsset": quote, "pricePrecision": 2,
            "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
            "underlyingType": "COIN", "settlePlan": 0, "triggerProtect": "0.0500",
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764",
                 "tickSize": "0.10"},
                {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000",
                 "stepSize": "0.001"},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120",
                 "stepSize": "0.001"},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": _s(MIN_NOTIONAL)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                 "multiplierDown": "0.9500", "multiplierDecimal": "4"}],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                           "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]})
    return {"timezone": "UTC", "serverTime": _now(), "futuresType": "U_MARGINED",
            "rateLimits": [], "exchangeFilters": [], "assets": [], "symbols": rows}


def futures_order(state: OrderState, *, ack: bool = False) -> dict[str, Any]:
    spot = order_json(state)
    executed = Decimal(0) if ack else state.filled
    return {
        "orderId": spot["orderId"], "symbol": spot["symbol"],
        "status": "NEW" if ack else spot["status"], "clientOrderId": state.client_order_id,
        "price": spot["price"], "avgPrice": "0" if ack else _s(state.average or 0),
        "origQty": spot["origQty"], "executedQty": _s(executed), "cumQty": _s(executed),
        "cumQuote": "0" if ack else spot["cummulativeQuoteQty"],
        "timeInForce": "GTC", "type": spot["type"],
        "reduceOnly": False, "closePosition": False, "side": spot["side"],
        "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
        "priceProtect": False, "origType": spot["type"], "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
        "time": state.timestamp_ms, "updateTime": _now()}


class FuturesApi:
    """The /fapi routes; reuses the simulator's auth, faults and symbol lookup."""

    def __init__(self, sim: BinanceSim, books: dict[str, PaperExchange]) -> None:
        self.sim, self.books = sim, books
        self.leverage: dict[tuple[str, str], int] = {}

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/fapi/v1/ping", self.sim.ping)
        r.add_get("/fapi/v1/time", self.sim.server_time)
        r.add_get("/fapi/v1/exchangeInfo", self.exchange_info)
        r.add_get("/fapi/v1/ticker/24hr", self.ticker)
        r.add_get("/fapi/v1/ticker/price", self.ticker)
        r.add_get("/fapi/v1/klines", self.sim.klines)
        r.add_post("/fapi/v1/order", self.create)
        r.add_get("/fapi/v1/order", self.query)
        r.add_delete("/fapi/v1/order", self.cancel)
        r.add_get("/fapi/v1/openOrders", self.open_orders)
        r.add_get("/fapi/v1/allOrders", self.all_orders)
        r.add_get("/fapi/v1/userTrades", self.user_trades)
        r.add_post("/fapi/v1/leverage", self.set_leverage)
        r.add_get("/fapi/v1/leverageBracket", self.brackets)
        r.add_get("/fapi/v1/commissionRate", self.commission)
        r.add_get("/fapi/v1/accountConfig", self.account_config)
        for v in ("v2", "v3"):
            r.add_get(f"/fapi/{v}/account", self.account)
            r.add_get(f"/fapi/{v}/balance", self.balance)
            r.add_get(f"/fapi/{v}/positionRisk", self.position_risk)

    async def _signed(self, request: web.Request) -> tuple[str, PaperExchange, dict[str, str]]:
        _, params = await self.sim._signed(request)
        key = request.headers["X-MBX-APIKEY"]
        return key, self.books[key], params

    @staticmethod
    def _error(code: int, msg: str) -> Exception:
        return BinanceError(400, code, msg)

    # -- public --------------------------------------------------------------------
    async def exchange_info(self, _: web.Request) -> web.Response:
        return web.json_response(exchange_info(list(next(iter(self.books.values()))._books)))

    async def ticker(self, request: web.Request) -> web.Response:
        book = next(iter(self.books.values()))
        symbol = self.sim._symbol(book, request.query.get("symbol"))
        return web.json_response(ticker_json(symbol, await book.get_ticker_price(symbol)))

    # -- orders --------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        symbol = self.sim._symbol(book, p.get("symbol"))
        try:
            req = OrderRequest(
                symbol=symbol, side=p["side"].lower(), type=p["type"].lower(),  # type: ignore[arg-type]
                amount=Decimal(p["quantity"]),
                price=Decimal(p["price"]) if p.get("price") else None,
                client_order_id=p.get("newClientOrderId") or f"sim-{_now()}",
                time_in_force=p.get("timeInForce", "GTC"))  # type: ignore[arg-type]
        except (KeyError, ArithmeticError) as exc:
            raise self._error(-1102, f"Mandatory parameter missing: {exc}") from exc
        if req.amount * (req.price or await book.get_ticker_price(symbol)) < MIN_NOTIONAL:
            raise self._error(-4164, "Order's notional must be no smaller than 5 (unless you "
                                     "choose reduce only).")
        try:
            state = await book.create_order(req)
        except InsufficientFunds as exc:
            raise self._error(-2019, "Margin is insufficient.") from exc
        except InvalidOrder as exc:
            if "Duplicate" in str(exc):
                raise self._error(-4116, "ClientOrderId is duplicated.") from exc
            raise self._error(-1102, str(exc)) from exc
        ack = p.get("newOrderRespType", "ACK") == "ACK"
        return web.json_response(futures_order(state, ack=ack))

    async def query(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        state = await self.sim._order(book, p, -2013, "Order does not exist.")
        return web.json_response(futures_order(state))

    async def cancel(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        state = await self.sim._order(book, p, -2011, "Unknown order sent.")
        if state.is_terminal:
            raise self._error(-2011, "Unknown order sent.")
        return web.json_response(futures_order(await book.cancel_order(state.symbol, state.id)))

    async def open_orders(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        symbol = self.sim._symbol(book, p["symbol"]) if p.get("symbol") else None
        return web.json_response([futures_order(s) for s in await book.get_open_orders(symbol)])

    async def all_orders(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        symbol = self.sim._symbol(book, p.get("symbol"))
        rows = await book.get_order_history(symbol, int(p.get("limit", "500")))
        return web.json_response([futures_order(s) for s in rows])

    async def user_trades(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        symbol = self.sim._symbol(book, p.get("symbol"))
        states = await book.get_order_history(symbol, 10_000)
        if p.get("orderId"):
            states = [s for s in states if s.id == f"P{p['orderId']}"]
        return web.json_response([{
            "buyer": s.side == "buy", "commission": _s(s.fee), "commissionAsset": s.fee_currency,
            "id": int(s.id.lstrip("P")) * 10, "maker": False, "orderId": int(s.id.lstrip("P")),
            "price": _s(s.average), "qty": _s(s.filled),
            "quoteQty": _s((s.average or Decimal(0)) * s.filled), "realizedPnl": "0",
            "side": s.side.upper(), "positionSide": "BOTH", "symbol": s.symbol.replace("/", ""),
            "time": s.timestamp_ms} for s in states if s.filled > 0])

    # -- account ---------------------------------------------------------------------
    async def set_leverage(self, request: web.Request) -> web.Response:
        key, book, p = await self._signed(request)
        symbol = self.sim._symbol(book, p.get("symbol"))
        self.leverage[(key, symbol)] = int(p.get("leverage", "1"))
        return web.json_response({"leverage": self.leverage[(key, symbol)],
                                  "maxNotionalValue": "1000000", "symbol": p["symbol"]})

    async def brackets(self, request: web.Request) -> web.Response:
        _, book, _ = await self._signed(request)
        return web.json_response([{"symbol": s.replace("/", ""), "notionalCoef": 1.0,
                                   "brackets": [{"bracket": 1, "initialLeverage": 125,
                                                 "notionalCap": 100_000_000, "notionalFloor": 0,
                                                 "maintMarginRatio": 0.004, "cum": 0.0}]}
                                  for s in book._books])

    async def commission(self, request: web.Request) -> web.Response:
        _, _, p = await self._signed(request)
        return web.json_response({"symbol": p.get("symbol"), "makerCommissionRate": "0.001",
                                  "takerCommissionRate": "0.001"})

    async def account_config(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return web.json_response({"feeTier": 0, "canTrade": True, "canDeposit": True,
                                  "canWithdraw": True, "dualSidePosition": False,
                                  "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1})

    async def _assets(self, book: PaperExchange) -> list[dict[str, Any]]:
        out = []
        for asset, b in (await book.get_balances()).items():
            if asset != "USDT":
                continue
            out.append({"asset": asset, "walletBalance": _s(b.total),
                        "unrealizedProfit": "0", "marginBalance": _s(b.total),
                        "maintMargin": "0", "initialMargin": _s(b.used),
                        "positionInitialMargin": "0", "openOrderInitialMargin": _s(b.used),
                        "crossWalletBalance": _s(b.total), "crossUnPnl": "0",
                        "availableBalance": _s(b.free), "maxWithdrawAmount": _s(b.free),
                        "balance": _s(b.total), "marginAvailable": True,
                        "updateTime": _now()})
        return out

    async def account(self, request: web.Request) -> web.Response:
        _, book, _ = await self._signed(request)
        assets = await self._assets(book)
        return web.json_response({
            "totalInitialMargin": "0", "totalMaintMargin": "0",
            "totalWalletBalance": assets[0]["walletBalance"] if assets else "0",
            "totalUnrealizedProfit": "0", "availableBalance": "0", "maxWithdrawAmount": "0",
            "canTrade": True, "canDeposit": True, "canWithdraw": True, "feeTier": 0,
            "assets": assets, "positions": await self._positions(book)})

    async def balance(self, request: web.Request) -> web.Response:
        _, book, _ = await self._signed(request)
        return web.json_response(await self._assets(book))

    async def _positions(self, book: PaperExchange) -> list[dict[str, Any]]:
        await book.get_open_orders()  # fills resting orders the walk crossed
        orders = [o.state(o.req.symbol.split("/")[1]) for o in book._orders.values()]
        out = []
        for symbol, (net, entry) in sorted(net_positions(orders).items()):
            mark = await book.get_ticker_price(symbol)
            out.append({
                "symbol": symbol.replace("/", ""), "positionSide": "BOTH",
                "positionAmt": _s(net), "entryPrice": _s(entry or 0),
                "breakEvenPrice": _s(entry or 0), "markPrice": _s(mark),
                "unRealizedProfit": _s((mark - (entry or mark)) * net),
                "liquidationPrice": "0", "isolatedMargin": "0", "notional": _s(net * mark),
                "marginAsset": "USDT", "isolatedWallet": "0", "initialMargin": "0",
                "maintMargin": "0", "positionInitialMargin": "0", "openOrderInitialMargin": "0",
                "adl": 0, "bidNotional": "0", "askNotional": "0", "leverage": "10",
                "marginType": "cross", "maxNotionalValue": "100000000",
                "isAutoAddMargin": "false", "updateTime": _now()})
        return out

    async def position_risk(self, request: web.Request) -> web.Response:
        _, book, p = await self._signed(request)
        rows = await self._positions(book)
        if p.get("symbol"):
            rows = [r for r in rows if r["symbol"] == p["symbol"]]
        return web.json_response(rows)
