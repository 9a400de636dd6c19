"""The real ccxt Binance client on the simulator's USDⓈ-M futures API (/fapi)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from worker import errors
from worker.exchange.binance import BinanceExchange
from worker.exchange.models import OrderRequest
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.faults import KINDS

SYM = "BTC/USDT:USDT"


def req(**kw: object) -> OrderRequest:
    base: dict[str, object] = {"symbol": SYM, "side": "buy", "type": "market",
                               "amount": Decimal("0.01"),
                               "client_order_id": f"ow-{uuid.uuid4().hex[:20]}"}
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


async def test_lifecycle_positions_and_fees(binance_futures: BinanceExchange,
                                            sim: BinanceSim) -> None:
    ex = binance_futures
    assert await ex.get_ticker_price(SYM) > 0 and await ex.fetch_ohlcv(SYM)
    assert (await ex.get_balances())["USDT"].free > 0
    rules = await ex.get_market_rules(SYM)
    assert rules.amount_step == Decimal("0.001") and rules.min_notional == Decimal(5)
    filled = await ex.execute_trade(req(amount=Decimal("0.02")))
    assert filled.status == "closed" and filled.filled == Decimal("0.02")
    found = await ex.find_order(SYM, filled.client_order_id or "")
    assert found is not None and found.fee > 0 and found.fee_currency == "USDT"
    (pos,) = [p for p in await ex.get_positions() if p.symbol == SYM]
    assert pos.side == "long" and pos.amount == Decimal("0.02") and pos.entry_price
    await ex.execute_trade(req(side="sell", amount=Decimal("0.05")))
    (pos,) = [p for p in await ex.get_positions() if p.symbol == SYM]
    assert pos.side == "short" and pos.amount == Decimal("0.03")
    resting = await ex.execute_trade(req(type="limit", price=Decimal("40000")))
    assert [o.id for o in await ex.get_open_orders(SYM)] == [resting.id]
    canceled = await ex.cancel_order(SYM, resting.id)
    assert canceled.status == "canceled"
    again = await ex.find_order(SYM, resting.client_order_id or "")
    assert again is not None and again.status == "canceled"
    assert await ex.find_order(SYM, "ow-never-placed") is None
    await ex.client.set_leverage(5, SYM)
    assert sim.futures.leverage[(next(iter(sim.books)), "BTC/USDT")] == 5
    assert not any(o.symbol == SYM for o in await ex.get_open_orders(SYM))


@pytest.mark.parametrize("kind", KINDS)
async def test_every_fault_on_create_yields_exactly_one_order(
        binance_futures: BinanceExchange, sim: BinanceSim, kind: str) -> None:
    sim.faults.set([{"kind": kind, "group": "create", "count": 1, "delay_s": 1.3}])
    r = req()
    state = await binance_futures.execute_trade(r)
    assert state.client_order_id == r.client_order_id
    assert sim.orders_per_client_id()[r.client_order_id] == 1


async def test_errors_map(binance_futures: BinanceExchange, sim: BinanceSim) -> None:
    ex = binance_futures
    r = req(type="limit", price=Decimal("40000"))
    await ex.create_order(r)
    with pytest.raises(errors.DuplicateClientOrderId):   # -4116 while the first is open
        await ex.create_order(r)
    for book in sim.futures.books.values():
        book._balances["USDT"] = Decimal(1000)
    with pytest.raises(errors.InsufficientFunds):        # -2019 margin
        await ex.create_order(req(amount=Decimal("0.05")))
    with pytest.raises(errors.InvalidOrder):             # -4164 notional
        await ex.create_order(req(type="limit", price=Decimal("100"), amount=Decimal("0.01")))
    with pytest.raises(errors.OrderNotFound):            # -2013
        await ex.get_order(SYM, "999999")
