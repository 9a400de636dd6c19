"""The ccxt path's budget and caches against the Binance simulator (issue 13)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from worker.exchange.binance import BinanceExchange
from worker.exchange.models import OrderRequest
from worker.exchange.venue import Venue
from worker.lab.sim.binance import BinanceSim


def _buy(cid: str) -> OrderRequest:
    return OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=Decimal("0.001"),
                        client_order_id=cid)


async def test_one_request_per_order_and_usage_headers(binance: BinanceExchange,
                                                       sim: BinanceSim) -> None:
    assert binance.client.enableRateLimit is False  # our budget governs
    balances = await binance.risk_balances()
    price, age = await binance.risk_price("BTC/USDT", 5.0)
    assert price and age < 1 and balances["USDT"].free > 0
    before = dict(sim.by_endpoint)
    for i in range(3):
        await binance.execute_trade(_buy(f"budget-{i}"), assume_absent=True)
        await binance.risk_balances()
        await binance.risk_price("BTC/USDT", 5.0)
    spent = {k: v - before.get(k, 0) for k, v in sim.by_endpoint.items()
             if v != before.get(k, 0)}
    assert spent == {"POST /api/v3/order": 3}
    ip = binance.venue.budget
    assert ip.windows["weight_1m"].used >= sim.limits.used - 1  # fed by the header
    assert binance.budget.orders["orders_10s"].used >= 3
    ledger = await binance.risk_balances()
    assert ledger["BTC"].total > balances["BTC"].total  # our fills moved the ledger


async def test_429_retry_after_pauses_every_account_of_the_ip(sim: BinanceSim) -> None:
    from tests.exchange.conftest import FAST_RETRY, KEY, SECRET, binance_config
    from worker.exchange.credentials import Credentials

    venue = Venue(BinanceExchange.rate_spec("spot"))
    cfg = binance_config(f"http://127.0.0.1:{sim.port}")
    a = BinanceExchange("binance", cfg, Credentials(KEY, SECRET), retry=FAST_RETRY,
                        venue=venue)
    b = BinanceExchange("binance", cfg, Credentials(KEY, SECRET), retry=FAST_RETRY,
                        venue=venue)
    async with a, b:
        assert sim.by_endpoint["GET /api/v3/exchangeInfo"] == 1  # markets loaded once
        sim.limits.enforce, sim.limits.weight_limit = True, sim.limits.used
        with pytest.raises(Exception, match="-1003"):
            await a.client.fetch_ticker("BTC/USDT")  # straight to ccxt: the hook sees 429
        assert venue.budget.paused_until > time.time() and b.budget.ip is venue.budget
