"""Bybit client options (no network); lookups are tested on the local Bybit server
(tests/exchange/test_bybit_adapter.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.exchange.bybit import BybitExchange
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest
from worker.exchange.retry import NO_RETRY
from worker.settings import ExchangeConfig


def bybit(market_type: str = "swap") -> BybitExchange:
    return BybitExchange("bybit", ExchangeConfig(driver="bybit", market_type=market_type),  # type: ignore[arg-type]
                         Credentials("k" * 8, "s" * 8), retry=NO_RETRY)


@pytest.mark.parametrize("market_type, fetch", [("spot", "spot"), ("swap", "linear")])
def test_client_options_and_create_params(market_type: str, fetch: str) -> None:
    ex = bybit(market_type)
    client = ex.build_client()  # the real ccxt class; constructing it does no I/O
    assert client.id == "bybit" and client.options["defaultType"] == market_type
    assert client.options["fetchMarkets"]["types"] == [fetch]
    req = OrderRequest(symbol="BTC/USDT", side="buy", type="limit", amount=Decimal(1),
                       price=Decimal(1), client_order_id="ow-y")
    assert ex.create_params(req) == {"orderLinkId": "ow-y", "timeInForce": "GTC"}
