"""Bybit's client-id quirks, against a stub ccxt client (no network)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from ccxt.base.errors import OrderNotFound as CcxtOrderNotFound

from worker.exchange.bybit import BybitExchange
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest
from worker.exchange.retry import NO_RETRY
from worker.settings import ExchangeConfig

RAW = {"id": "b1", "clientOrderId": "ow-x", "symbol": "BTC/USDT:USDT", "side": "buy",
       "type": "limit", "status": "closed", "amount": 0.5, "filled": 0.5, "remaining": 0.0,
       "price": 60000.0, "average": 60000.0, "fee": {"cost": 0.3, "currency": "USDT"},
       "timestamp": 1}


class StubBybit:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def fetch_open_orders(self, symbol: str, since: Any, limit: Any,
                                params: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append(("open", params))
        return []

    async def fetch_canceled_and_closed_orders(self, symbol: str, since: Any, limit: Any,
                                               params: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append(("closed", params))
        return [RAW] if params.get("orderLinkId") == "ow-x" else []

    async def fetch_open_order(self, order_id: str, symbol: str) -> dict[str, Any]:
        raise CcxtOrderNotFound("not open")

    async def fetch_closed_order(self, order_id: str, symbol: str) -> dict[str, Any]:
        return RAW


def bybit(market_type: str = "swap") -> BybitExchange:
    ex = BybitExchange("bybit", ExchangeConfig(driver="bybit", market_type=market_type),  # type: ignore[arg-type]
                       Credentials("k" * 8, "s" * 8), retry=NO_RETRY)
    ex.client = StubBybit()
    return ex


async def test_lookup_by_order_link_id_searches_open_then_closed() -> None:
    ex = bybit()
    found = await ex.find_order("BTC/USDT:USDT", "ow-x")
    assert found is not None and found.status == "closed" and found.fee == Decimal("0.3")
    assert [c[0] for c in ex.client.calls] == ["open", "closed"]
    assert all(c[1] == {"orderLinkId": "ow-x"} for c in ex.client.calls)
    assert await ex.find_order("BTC/USDT:USDT", "ow-missing") is None


async def test_get_order_falls_back_from_open_to_closed() -> None:
    state = await bybit().get_order("BTC/USDT:USDT", "b1")
    assert state.id == "b1" and state.filled == Decimal("0.5")


@pytest.mark.parametrize("market_type, fetch", [("spot", "spot"), ("swap", "linear")])
def test_client_options_and_create_params(market_type: str, fetch: str) -> None:
    ex = bybit(market_type)
    client = ex.build_client()  # the real ccxt class; constructing it does no I/O
    assert client.id == "bybit" and client.options["defaultType"] == market_type
    assert client.options["fetchMarkets"]["types"] == [fetch]
    req = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=Decimal(1),
                       price=Decimal(1), client_order_id="ow-y")
    assert ex.create_params(req) == {"orderLinkId": "ow-y", "timeInForce": "GTC"}
