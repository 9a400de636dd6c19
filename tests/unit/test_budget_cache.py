"""Rate budget, ticker cache and balance ledger (issue 13), with fake clocks: fast."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from worker.exchange.binance import SPOT_LIMITS
from worker.exchange.budget import AccountBudget, IpBudget, RateSpec, Window
from worker.exchange.ledger import BalanceLedger, order_delta
from worker.exchange.models import Balance, OrderState
from worker.exchange.venue import TickerCache


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_window_bursts_to_capacity_then_waits_for_the_next_window() -> None:
    w = Window(limit=10, period_s=60)
    now = 600.0  # a window start
    for _ in range(10):
        assert w.wait_s(1, now) == 0
        w.take(1, now)
    assert w.wait_s(1, now + 20) == pytest.approx(40)
    assert w.wait_s(1, now + 60) == 0  # the window turned
    w.observe(9, now + 61)  # the exchange counted others' use too
    assert w.wait_s(2, now + 61) > 0


def test_headers_and_retry_after_govern_the_ip() -> None:
    clock = Clock(6000.0)
    ip = IpBudget(SPOT_LIMITS, clock=clock)
    acct = AccountBudget(ip)
    acct.on_response({"X-MBX-USED-WEIGHT-1M": "5999", "X-MBX-ORDER-COUNT-10S": "100"}, 200)
    assert ip.windows["weight_1m"].used == 5999
    assert acct.orders["orders_10s"].wait_s(1, clock()) > 0
    assert ip.windows["weight_1m"].wait_s(4, clock()) > 0  # a lookup (4) no longer fits
    acct.on_response({"Retry-After": "7"}, 429)
    assert ip.paused_until == clock() + 7


def test_shared_ip_share_and_weights() -> None:
    ip = IpBudget(SPOT_LIMITS, share=0.5)
    assert ip.windows["weight_1m"].limit == 3000
    assert ip.weight_of("create_order") == 1 and ip.weight_of("fetch_order") == 4


async def test_acquire_waits_out_a_pause() -> None:
    ip = IpBudget(RateSpec(ip_windows={"w": (100, 60)}))
    acct = AccountBudget(ip)
    ip.pause(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await acct.acquire("anything")
    assert loop.time() - t0 >= 0.04 and ip.requests == 1


async def test_ticker_cache_batches_and_bounds_age() -> None:
    clock = Clock(100.0)
    cache = TickerCache(refresh_s=1.0, clock=clock)
    calls: list[list[str]] = []

    async def fetch(symbols: list[str]) -> dict[str, Decimal]:
        calls.append(symbols)
        return {s: Decimal("10") for s in symbols}

    assert await cache.price("BTC/USDT", fetch, 5.0) == (Decimal("10"), 0.0)
    clock.t += 0.5
    assert (await cache.price("ETH/USDT", fetch, 5.0))[0] == Decimal("10")
    assert await cache.price("BTC/USDT", fetch, 5.0) == (Decimal("10"), 0.0)  # batched
    clock.t += 2.0  # stale beyond refresh_s, within max age: used, refreshed behind
    price, age = await cache.price("BTC/USDT", fetch, 5.0)
    assert (price, age) == (Decimal("10"), 2.0)
    await asyncio.sleep(0)
    assert calls[-1] == ["BTC/USDT", "ETH/USDT"]  # one batched call for both

    async def failing(symbols: list[str]) -> dict[str, Decimal]:
        raise OSError("down")

    clock.t += 10.0  # too old: waits for a refresh, which fails: the age says so
    price, age = await cache.price("BTC/USDT", failing, 5.0)
    assert age > 5.0 and isinstance(cache.error, OSError)  # the adapter: TransientError


def _state(side: str, filled: str, status: str = "closed", price: str = "100") -> OrderState:
    amount = Decimal("2")
    return OrderState(id="1", client_order_id="c", symbol="BTC/USDT", side=side, type="limit",
                      status=status,  # type: ignore[arg-type]
                      amount=amount, filled=Decimal(filled), remaining=amount - Decimal(filled),
                      price=Decimal(price), average=Decimal(price), fee=Decimal("0.1"),
                      fee_currency="USDT", fees={"USDT": Decimal("0.1")})


def test_order_delta_moves_fills_fees_and_locks() -> None:
    d = order_delta(_state("buy", "2"), "BTC", "USDT")
    assert d == {"BTC": (Decimal(2), Decimal(0)), "USDT": (Decimal("-200.1"), Decimal(0))}
    d = order_delta(_state("sell", "0", status="open"), "BTC", "USDT")
    assert d["BTC"] == (Decimal(-2), Decimal(2))


async def test_ledger_fetches_once_applies_own_orders_and_reconciles() -> None:
    clock = Clock(0.0)
    ledger = BalanceLedger(refresh_s=30, clock=clock)
    fetches = 0

    async def fetch() -> dict[str, Balance]:
        nonlocal fetches
        fetches += 1
        return {"USDT": Balance(free=Decimal(1000), asset="USDT")}

    assert (await ledger.get(fetch))["USDT"].free == 1000
    ledger.apply(order_delta(_state("buy", "2"), "BTC", "USDT"))
    got = await ledger.get(fetch)
    assert got["USDT"].free == Decimal("799.9") and got["BTC"].total == 2 and fetches == 1
    clock.t = 31.0  # old: answered from the ledger, reconciled behind
    assert (await ledger.get(fetch))["USDT"].free == Decimal("799.9")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert fetches == 2 and (await ledger.get(fetch))["USDT"].free == 1000


def test_bybit_endpoint_quota_headers() -> None:
    from worker.exchange.bybit import LIMITS

    acct = AccountBudget(IpBudget(LIMITS))
    acct.on_response({"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "1"}, 200,
                     "https://api.bybit.com/v5/order/create?x=1")
    assert acct.orders["creates_1s"].used == 9
    acct.on_response({"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "0"}, 200,
                     "https://api.bybit.com/v5/order/realtime")
    assert acct.orders["creates_1s"].used == 9  # another endpoint's quota
