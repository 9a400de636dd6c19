"""The real ccxt Bybit client against the local Bybit v5 server, spot and linear."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import aiohttp
import pytest

from tests.exchange.conftest import FAST_RETRY, KEY, bybit_config
from worker import errors
from worker.exchange.bybit import BybitExchange
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest
from worker.lab.sim.bybit import BybitSim
from worker.lab.sim.faults import KINDS


def sym(ex: BybitExchange) -> str:
    return "BTC/USDT" if ex.config.market_type == "spot" else "BTC/USDT:USDT"


def req(ex: BybitExchange, **kw: object) -> OrderRequest:
    base: dict[str, object] = {"symbol": sym(ex), "side": "buy", "type": "market",
                               "amount": Decimal("0.01"),
                               "client_order_id": f"ow-{uuid.uuid4().hex[:20]}"}
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


async def admin(sim: BybitSim, path: str, body: dict[str, object]) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            f"http://127.0.0.1:{sim.port}/_admin/{path}", json=body) as r:
        assert r.status == 200


async def test_market_data_account_and_order_lifecycle(bybit: BybitExchange) -> None:
    s = sym(bybit)
    assert await bybit.get_ticker_price(s) > 0
    assert await bybit.fetch_ohlcv(s)
    assert (await bybit.get_balances())["USDT"].free > 0
    filled = await bybit.execute_trade(req(bybit))
    assert filled.status == "closed" and filled.filled == Decimal("0.01")
    assert filled.fee > 0 and filled.fee_currency in ("BTC", "USDT")
    resting = await bybit.execute_trade(req(bybit, type="limit", price=Decimal("40000")))
    assert resting.status == "open"
    assert [o.id for o in await bybit.get_open_orders(s)] == [resting.id]
    canceled = await bybit.cancel_order(s, resting.id)
    assert canceled.status == "canceled"
    again = await bybit.find_order(s, resting.client_order_id or "")
    assert again is not None and again.status == "canceled"
    assert await bybit.find_order(s, "ow-never-placed") is None
    if bybit.config.market_type != "spot":
        (pos,) = [p for p in await bybit.get_positions() if p.symbol == s]
        assert pos.side == "long" and pos.amount == Decimal("0.01")


async def test_canceled_order_reported_canceled_when_only_history_knows_it(
        bybit: BybitExchange, bybit_sim: BybitSim) -> None:
    r = req(bybit, type="limit", price=Decimal("40000"))
    placed = await bybit.execute_trade(r)
    await bybit.cancel_order(r.symbol, placed.id)
    await admin(bybit_sim, "faults", {"rules": [], "history_delay_ms": 300})
    await admin(bybit_sim, "restart", {})  # realtime forgets closed orders
    assert await bybit.find_order(r.symbol, r.client_order_id) is None  # history lags
    await asyncio.sleep(0.35)
    for state in (await bybit.find_order(r.symbol, r.client_order_id),
                  await bybit.get_order(r.symbol, placed.id)):
        assert state is not None and state.status == "canceled"


async def test_partially_filled_then_canceled_is_canceled(bybit: BybitExchange,
                                                          bybit_sim: BybitSim) -> None:
    book = bybit_sim.desks[KEY].books["spot" if bybit.config.market_type == "spot" else "linear"]
    book.fill_ratio = Decimal("0.5")
    for b in book._books.values():
        b.tick_s = 1e6  # no further fills
    r = req(bybit)
    placed = await bybit.execute_trade(r)
    assert placed.status == "open" and placed.filled == Decimal("0.005")
    done = await bybit.cancel_order(r.symbol, placed.id)
    assert done.status == "canceled" and done.filled == Decimal("0.005")


@pytest.mark.parametrize("kind", KINDS)
async def test_every_fault_on_create_yields_exactly_one_order(
        bybit: BybitExchange, bybit_sim: BybitSim, kind: str) -> None:
    bybit_sim.faults.set([{"kind": kind, "group": "create", "count": 1, "delay_s": 1.3}])
    r = req(bybit)
    state = await bybit.execute_trade(r)
    assert state.client_order_id == r.client_order_id
    assert bybit_sim.orders_per_client_id()[r.client_order_id] == 1


async def test_failed_follow_up_of_an_ack_only_create_is_ambiguous(
        bybit: BybitExchange, bybit_sim: BybitSim) -> None:
    bybit_sim.faults.set([{"kind": "reset", "group": "query", "count": 10}])
    r = req(bybit)
    with pytest.raises(errors.AmbiguousOrderState):
        await bybit.create_order(r)  # accepted, but the lookup of its status failed
    bybit_sim.faults.set([])
    state = await bybit.execute_trade(r)  # reconciles: adopts, never creates again
    assert state.status == "closed" and bybit_sim.orders_per_client_id()[r.client_order_id] == 1


@pytest.mark.parametrize("kind, error", [
    ("unknown", errors.AmbiguousOrderState),        # 10016 System error: maybe executed
    ("unknown_after", errors.AmbiguousOrderState),
    ("429", errors.RateLimited),                    # 10006: refused before processing
])
async def test_create_fault_codes_map(bybit: BybitExchange, bybit_sim: BybitSim, kind: str,
                                      error: type[Exception]) -> None:
    bybit_sim.faults.set([{"kind": kind, "group": "create", "count": 1}])
    with pytest.raises(error):
        await bybit.create_order(req(bybit))


async def test_unknown_outcome_code_on_a_query_is_transient(bybit: BybitExchange,
                                                            bybit_sim: BybitSim) -> None:
    bybit_sim.faults.set([{"kind": "unknown", "group": "query", "count": 10}])
    with pytest.raises(errors.TransientError):
        await bybit.find_order(sym(bybit), "ow-x")


async def test_permanent_errors_map(bybit: BybitExchange) -> None:
    r = req(bybit, type="limit", price=Decimal("40000"))
    await bybit.create_order(r)
    with pytest.raises(errors.DuplicateClientOrderId):   # 110072
        await bybit.create_order(r)
    with pytest.raises(errors.InsufficientFunds):        # 170131 spot / 110007 linear
        await bybit.create_order(req(bybit, amount=Decimal("5000")))
    with pytest.raises(errors.InvalidOrder):             # min notional 170140 / 110094
        await bybit.create_order(req(bybit, type="limit", price=Decimal("10"),
                                     amount=Decimal("0.01")))
    with pytest.raises(errors.InvalidOrder):             # below the lot step (local)
        await bybit.create_order(req(bybit, amount=Decimal("0.0000001")))
    with pytest.raises(errors.OrderNotFound):            # 110001 / 170213
        await bybit.cancel_order(sym(bybit), "s999999")


async def test_bad_key_and_bad_signature_are_auth_errors(bybit_sim: BybitSim) -> None:
    url = f"http://127.0.0.1:{bybit_sim.port}"
    for key, secret in (("unknown-key-1", "whatever"), (KEY, "wrong-secret")):
        ex = BybitExchange("bybit", bybit_config(url), Credentials(key, secret),
                           retry=FAST_RETRY)
        with pytest.raises(errors.AuthError):  # ccxt's load_markets makes a private call
            async with ex:
                pass


async def test_duplicate_link_id_after_a_lagging_lookup_reconciles_never_rejects(
        bybit: BybitExchange, bybit_sim: BybitSim) -> None:
    r = req(bybit, type="limit", price=Decimal("40000"))
    placed = await bybit.execute_trade(r)
    await bybit.cancel_order(r.symbol, placed.id)
    await admin(bybit_sim, "faults", {"rules": [], "history_delay_ms": 800})
    await admin(bybit_sim, "restart", {})
    # a redelivered command: the lookup misses (history lags), the create is refused as a
    # duplicate (110072) -> reconcile by lookup until history shows the canceled order
    state = await bybit.execute_trade(r)
    assert state.id == placed.id and state.status == "canceled"
    assert bybit_sim.orders_per_client_id()[r.client_order_id] == 1
