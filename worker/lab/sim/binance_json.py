"""Binance spot REST payload shapes, built from paper-engine state."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from worker.exchange.models import OrderState
from worker.lab.sim.server import SimError


class BinanceError(SimError):
    """Answered with HTTP ``status`` and ``{"code", "msg"}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


_STATUS = {"closed": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED",
           "rejected": "REJECTED"}


def _s(d: Decimal | None) -> str:
    return "0" if d is None else format(d, "f")


def _order_id(state: OrderState) -> int:
    return int(state.id.lstrip("P"))


def exchange_info(books: dict[str, Any]) -> dict[str, Any]:
    symbols = []
    for symbol in books:
        base, quote = symbol.split("/")
        symbols.append({
            "symbol": base + quote, "status": "TRADING", "baseAsset": base,
            "baseAssetPrecision": 8, "quoteAsset": quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "icebergAllowed": True,
            "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00",
                 "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000.00000000",
                 "stepSize": "0.00001"},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000",
                 "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
        })
    return {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": [],
            "exchangeFilters": [], "symbols": symbols}


def ticker_json(symbol: str, price: Decimal) -> dict[str, Any]:
    now = int(time.time() * 1000)
    p = _s(price)
    return {"symbol": symbol.replace("/", ""), "priceChange": "0", "priceChangePercent": "0",
            "weightedAvgPrice": p, "prevClosePrice": p, "lastPrice": p, "lastQty": "0.1",
            "bidPrice": p, "bidQty": "1", "askPrice": p, "askQty": "1", "openPrice": p,
            "highPrice": p, "lowPrice": p, "volume": "1000", "quoteVolume": "0",
            "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 2,
            "count": 1, "price": p}


def order_json(state: OrderState, *, full: bool = False) -> dict[str, Any]:
    status = _STATUS.get(state.status) or ("PARTIALLY_FILLED" if state.filled else "NEW")
    quote_qty = (state.average or Decimal(0)) * state.filled
    body: dict[str, Any] = {
        "symbol": state.symbol.replace("/", ""), "orderId": _order_id(state),
        "orderListId": -1, "clientOrderId": state.client_order_id,
        "price": _s(state.price), "origQty": _s(state.amount),
        "executedQty": _s(state.filled), "cummulativeQuoteQty": _s(quote_qty),
        "status": status, "timeInForce": "GTC", "type": state.type.upper(),
        "side": state.side.upper(), "stopPrice": "0", "icebergQty": "0",
        "time": state.timestamp_ms, "updateTime": int(time.time() * 1000), "isWorking": True,
        "workingTime": state.timestamp_ms, "origQuoteOrderQty": "0",
        "selfTradePreventionMode": "NONE",
    }
    if full:
        body["transactTime"] = state.timestamp_ms
        body["fills"] = [] if not state.filled else [{
            "price": _s(state.average), "qty": _s(state.filled), "commission": _s(state.fee),
            "commissionAsset": state.fee_currency, "tradeId": _order_id(state) * 10}]
    return body


def trade_json(state: OrderState) -> dict[str, Any]:
    return {"symbol": state.symbol.replace("/", ""), "id": _order_id(state) * 10,
            "orderId": _order_id(state), "orderListId": -1, "price": _s(state.average),
            "qty": _s(state.filled), "quoteQty": _s((state.average or Decimal(0)) * state.filled),
            "commission": _s(state.fee), "commissionAsset": state.fee_currency,
            "time": state.timestamp_ms, "isBuyer": state.side == "buy", "isMaker": False,
            "isBestMatch": True}
