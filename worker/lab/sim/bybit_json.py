"""Bybit v5 REST payload shapes, built from paper-engine state.

Filters per category (every symbol alike): spot ``basePrecision`` 0.000001,
``minOrderQty`` 0.00001, ``minOrderAmt`` 1; linear ``qtyStep``/``minOrderQty``
0.001, ``minNotionalValue`` 5; price tick 0.01 everywhere. Fees: the paper engine
charges the quote coin; as Bybit does, a spot buy reports its fee in the base coin
(converted at the average price), everything else in the quote coin.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from worker.exchange.models import OrderState

SPOT_STEP, SPOT_MIN_QTY, SPOT_MIN_AMT = Decimal("0.000001"), Decimal("0.00001"), Decimal(1)
LINEAR_STEP, LINEAR_MIN_NOTIONAL = Decimal("0.001"), Decimal(5)
TICK = Decimal("0.01")

_STATUS = {"closed": "Filled", "expired": "Cancelled", "rejected": "Rejected"}


def _s(d: Decimal | int | None) -> str:
    return "" if d is None else format(d, "f")


def ms() -> int:
    return int(time.time() * 1000)


def envelope(result: Any, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    return {"retCode": code, "retMsg": msg, "result": result if result is not None else {},
            "retExtInfo": {}, "time": ms()}


def market_id(symbol: str) -> str:
    return symbol.replace("/", "")


def order_id(category: str, state: OrderState) -> str:
    """Bybit order ids are strings; ours keep the category so a lookup finds its book."""
    return f"{category[0]}{state.id.lstrip('P')}"


def instrument(category: str, symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    common = {"symbol": market_id(symbol), "baseCoin": base, "quoteCoin": quote,
              "status": "Trading", "priceFilter": {"tickSize": _s(TICK)}}
    if category == "spot":
        return {**common, "innovation": "0", "marginTrading": "none", "lotSizeFilter": {
            "basePrecision": _s(SPOT_STEP), "quotePrecision": "0.00000001",
            "minOrderQty": _s(SPOT_MIN_QTY), "maxOrderQty": "10000",
            "minOrderAmt": _s(SPOT_MIN_AMT), "maxOrderAmt": "100000000"}}
    return {**common, "contractType": "LinearPerpetual", "settleCoin": quote,
            "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": "2", "unifiedMarginTrade": True, "fundingInterval": 480,
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00",
                               "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": _s(TICK)},
            "lotSizeFilter": {"maxOrderQty": "1190", "minOrderQty": _s(LINEAR_STEP),
                              "qtyStep": _s(LINEAR_STEP), "maxMktOrderQty": "500",
                              "minNotionalValue": _s(LINEAR_MIN_NOTIONAL)}}


def ticker(category: str, symbol: str, price: Decimal) -> dict[str, Any]:
    p = _s(price)
    out = {"symbol": market_id(symbol), "bid1Price": p, "bid1Size": "1", "ask1Price": p,
           "ask1Size": "1", "lastPrice": p, "prevPrice24h": p, "price24hPcnt": "0",
           "highPrice24h": p, "lowPrice24h": p, "turnover24h": "0", "volume24h": "1000"}
    if category == "linear":
        out.update(markPrice=p, indexPrice=p, fundingRate="0.0001", openInterest="1")
    return out


def fee_of(category: str, state: OrderState) -> tuple[str, Decimal]:
    """(coin, amount) of the order's fee as Bybit reports it."""
    base, quote = state.symbol.split("/")
    if category == "spot" and state.side == "buy" and state.average:
        return base, (state.fee / state.average).quantize(Decimal("0.00000001"))
    return quote, state.fee


def order(category: str, state: OrderState, *, status: str | None = None) -> dict[str, Any]:
    """One order as /v5/order/realtime and /v5/order/history list it."""
    if status is None:
        status = _STATUS.get(state.status)
        if state.status == "canceled":
            status = "PartiallyFilledCanceled" if state.filled else "Cancelled"
        elif status is None:
            status = "PartiallyFilled" if state.filled else "New"
    value = (state.average or Decimal(0)) * state.filled
    ccy, fee = fee_of(category, state)
    return {
        "orderId": order_id(category, state), "orderLinkId": state.client_order_id or "",
        "blockTradeId": "", "symbol": market_id(state.symbol), "price": _s(state.price or 0),
        "qty": _s(state.amount), "side": state.side.capitalize(), "isLeverage": "0",
        "positionIdx": 0, "orderStatus": status, "cancelType": "UNKNOWN",
        "rejectReason": "EC_NoError", "avgPrice": _s(state.average or 0),
        "leavesQty": _s(state.remaining if state.status == "open" else 0),
        "leavesValue": "0", "cumExecQty": _s(state.filled), "cumExecValue": _s(value),
        "cumExecFee": _s(fee), "cumFeeDetail": {ccy: _s(fee)} if fee else {},
        "timeInForce": "GTC" if state.type == "limit" else "IOC",
        "orderType": state.type.capitalize(), "stopOrderType": "", "orderIv": "",
        "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0", "reduceOnly": False,
        "closeOnTrigger": False, "marketUnit": "baseCoin" if category == "spot" else "",
        "createdTime": str(state.timestamp_ms), "updatedTime": str(ms()),
    }


def execution(category: str, state: OrderState) -> dict[str, Any]:
    """The order's fills as one execution (the paper engine keeps no per-fill record)."""
    value = (state.average or Decimal(0)) * state.filled
    ccy, fee = fee_of(category, state)
    return {"symbol": market_id(state.symbol), "orderId": order_id(category, state),
            "orderLinkId": state.client_order_id or "", "side": state.side.capitalize(),
            "orderPrice": _s(state.price or 0), "orderQty": _s(state.amount),
            "orderType": state.type.capitalize(), "execFee": _s(fee), "feeCurrency": ccy,
            "execId": f"x{order_id(category, state)}", "execPrice": _s(state.average),
            "execQty": _s(state.filled), "execType": "Trade", "execValue": _s(value),
            "execTime": str(state.timestamp_ms), "isMaker": False, "feeRate": "0.001",
            "leavesQty": _s(state.remaining), "closedSize": "0", "seq": 1}


def position(symbol: str, net: Decimal, entry: Decimal | None,
             mark: Decimal) -> dict[str, Any]:
    side = "Buy" if net > 0 else "Sell" if net < 0 else ""
    size = abs(net)
    pnl = (mark - entry) * net if entry is not None else Decimal(0)
    return {"positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000",
            "symbol": market_id(symbol), "side": side, "size": _s(size),
            "avgPrice": _s(entry or 0), "positionValue": _s(size * (entry or 0)),
            "tradeMode": 0, "autoAddMargin": 0, "positionStatus": "Normal", "leverage": "10",
            "markPrice": _s(mark), "liqPrice": "", "bustPrice": "", "positionIM": "0",
            "positionMM": "0", "positionBalance": "0", "tpslMode": "Full", "takeProfit": "0",
            "stopLoss": "0", "trailingStop": "0", "unrealisedPnl": _s(pnl), "curRealisedPnl": "0",
            "cumRealisedPnl": "0", "adlRankIndicator": 2, "isReduceOnly": False,
            "createdTime": "1676538056258", "updatedTime": str(ms()), "seq": 1}


def wallet(balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Any]:
    """UNIFIED wallet; ``balances``: coin -> (total, locked)."""
    coins = [{"coin": c, "equity": _s(t), "usdValue": "0", "walletBalance": _s(t),
              "locked": _s(u), "totalOrderIM": "0", "totalPositionIM": "0",
              "borrowAmount": "0", "accruedInterest": "0", "availableToWithdraw": "",
              "unrealisedPnl": "0", "cumRealisedPnl": "0"} for c, (t, u) in balances.items()]
    return {"list": [{"accountType": "UNIFIED", "totalEquity": "0", "totalWalletBalance": "0",
                      "totalAvailableBalance": "0", "accountIMRate": "0", "accountMMRate": "0",
                      "coin": coins}]}
