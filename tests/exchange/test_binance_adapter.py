"""The real ccxt Binance client against the local Binance-compatible simulator."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

import pytest

from tests.exchange.conftest import FAST_RETRY, KEY, binance_config
from worker import errors
from worker.exchange.binance import BinanceExchange
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest
from worker.lab.sim.binance import BinanceSim


def req(**kw: object) -> OrderRequest:
    base: dict[str, object] = {"symbol": "BTC/USDT", "side": "buy", "type": "market",
                               "amount": Decimal("0.01"),
                               "client_order_id": f"ow-{uuid.uuid4().hex[:20]}"}
    base.update(kw)
    return OrderRequest(**base)  # type: ignore[arg-type]


async def test_market_data_account_and_order_lifecycle(binance: BinanceExchange) -> None:
    assert await binance.get_ticker_price("BTC/USDT") > 0
    rules = await binance.get_market_rules("BTC/USDT")
    assert rules.amount_step == Decimal("0.00001") and rules.min_notional == Decimal(5)
    assert (await binance.get_balances())["USDT"].free > 0
    assert await binance.get_portfolio_value("USDT") > 0
    assert await binance.fetch_ohlcv("BTC/USDT")

    filled = await binance.execute_trade(req())
    assert filled.status == "closed" and filled.fee > 0 and filled.fee_currency == "USDT"
    resting = await binance.execute_trade(req(type="limit", price=Decimal("40000")))
    assert resting.status == "open"
    assert [o.id for o in await binance.get_open_orders("BTC/USDT")] == [resting.id]
    canceled = await binance.cancel_order("BTC/USDT", resting.id)
    assert canceled.status == "canceled"
    assert len(await binance.get_order_history("BTC/USDT")) == 2
    assert await binance.find_order("BTC/USDT", "ow-never-placed") is None


async def test_amount_is_rounded_to_the_lot_step(binance: BinanceExchange) -> None:
    state = await binance.execute_trade(req(amount=Decimal("0.0123456789")))
    assert state.amount == Decimal("0.01234")


async def test_execute_trade_adopts_an_existing_order(binance: BinanceExchange,
                                                      sim: BinanceSim) -> None:
    r = req()
    first = await binance.execute_trade(r)
    again = await binance.execute_trade(r)  # redelivered command: no second create
    assert again.id == first.id
    assert sim.orders_per_client_id()[r.client_order_id] == 1


@pytest.mark.parametrize("request_, error", [
    (req(amount=Decimal("5000")), errors.InsufficientFunds),
    (req(amount=Decimal("0.00002")), errors.InvalidOrder),       # NOTIONAL filter -> BadRequest
    (req(amount=Decimal("0.000001")), errors.InvalidOrder),      # below the lot step
    (req(symbol="DOGE/USDT"), errors.InvalidOrder),              # unknown market
])
async def test_permanent_errors_map(binance: BinanceExchange, request_: OrderRequest,
                                    error: type[Exception]) -> None:
    with pytest.raises(error):
        await binance.execute_trade(request_)


async def test_duplicate_client_id_of_open_order_is_refused_by_the_exchange(
        binance: BinanceExchange) -> None:
    r = req(type="limit", price=Decimal("40000"))
    await binance.create_order(r)
    with pytest.raises(errors.DuplicateClientOrderId, match="Duplicate"):
        await binance.create_order(r)


async def test_bad_signature_and_unknown_key_are_auth_errors(sim: BinanceSim) -> None:
    url = f"http://127.0.0.1:{sim.port}"
    for creds in (Credentials(KEY, "wrong-secret"), Credentials("unknown-key", "s" * 10)):
        async with BinanceExchange("binance", binance_config(url), creds,
                                   retry=FAST_RETRY) as bad:
            with pytest.raises(errors.AuthError):
                await bad.get_balances()


async def test_error_messages_carry_no_signature(binance: BinanceExchange,
                                                 sim: BinanceSim) -> None:
    sim.faults.set([{"kind": "reset", "group": "account", "rate": 1.0}])
    with pytest.raises(errors.TransientError) as info:
        await binance.get_balances()
    assert "signature=**redacted**" in str(info.value)  # ccxt puts the signed URL in it


async def test_unknown_order_is_not_found(binance: BinanceExchange) -> None:
    with pytest.raises(errors.OrderNotFound):
        await binance.get_order("BTC/USDT", "999999")
    with pytest.raises(errors.OrderNotFound):
        await binance.cancel_order("BTC/USDT", "999999")


@pytest.mark.parametrize("kind, error", [
    ("429", errors.RateLimited), ("500", errors.TransientError),
    ("503", errors.TransientError), ("reset", errors.TransientError),
])
async def test_transient_errors_are_retried_then_raised(binance: BinanceExchange,
                                                        sim: BinanceSim, kind: str,
                                                        error: type[Exception]) -> None:
    sim.faults.set([{"kind": kind, "group": "account", "count": 1}])
    assert await binance.get_balances()  # one fault: retried, succeeds
    sim.faults.set([{"kind": kind, "group": "account", "rate": 1.0}])
    with pytest.raises(error):
        await binance.get_balances()


async def test_create_errors_classified(binance: BinanceExchange, sim: BinanceSim) -> None:
    sim.faults.set([{"kind": "429", "group": "create", "count": 1}])
    with pytest.raises(errors.RateLimited):          # refused: not ambiguous
        await binance.create_order(req())
    for kind in ("500", "500_after", "503", "reset", "accept_drop"):
        sim.faults.set([{"kind": kind, "group": "create", "count": 1}])
        with pytest.raises(errors.AmbiguousOrderState):
            await binance.create_order(req())


@pytest.mark.parametrize("kind, delay_s", [
    ("500", 0), ("500_after", 0), ("503", 0), ("429", 0), ("reset", 0), ("accept_drop", 0),
    ("latency", 1.2),   # executed after the client timed out, inside recvWindow
    ("latency", 2.0),   # arrives after recvWindow: the exchange refuses it
])
async def test_no_fault_on_create_yields_two_orders(binance: BinanceExchange, sim: BinanceSim,
                                                    kind: str, delay_s: float) -> None:
    r = req()
    sim.faults.set([{"kind": kind, "group": "create", "count": 1, "delay_s": delay_s}])
    state = await binance.execute_trade(r)
    assert state.client_order_id == r.client_order_id and state.status == "closed"
    assert sim.orders_per_client_id()[r.client_order_id] == 1


@pytest.mark.slow
async def test_random_faults_everywhere_never_double_an_order(binance: BinanceExchange,
                                                              sim: BinanceSim) -> None:
    kinds = ["500", "500_after", "503", "429", "reset", "accept_drop"]
    sim.faults.set([{"kind": k, "group": "any", "rate": 0.04} for k in kinds], seed=11)
    rng = random.Random(5)
    placed = 0
    for _ in range(60):
        r = req(side=rng.choice(["buy", "sell"]), amount=Decimal("0.001"))
        for _attempt in range(8):  # what redeliveries of the command would do
            try:
                await binance.execute_trade(r)
                placed += 1
                break
            except (errors.TransientError, errors.AmbiguousOrderState):
                continue
    counts = sim.orders_per_client_id()
    assert placed >= 55
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}
    assert sum(sim.faults.injected.values()) > 20


async def test_fee_is_unknown_while_the_trade_list_lags(binance: BinanceExchange,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    r = req()
    await binance.execute_trade(r)
    found = await binance.find_order(r.symbol, r.client_order_id)
    assert found is not None and found.fees == {"USDT": found.fee} and found.fee > 0

    async def lagging(*_: object) -> list[object]:
        return []

    monkeypatch.setattr(binance.client, "fetch_my_trades", lagging)
    with pytest.raises(errors.TransientError, match="lag"):
        await binance.find_order(r.symbol, r.client_order_id)


@pytest.mark.parametrize("kind", ["unknown", "unknown_after"])
async def test_unknown_execution_status_on_create_is_ambiguous_and_reconciles(
        binance: BinanceExchange, sim: BinanceSim, kind: str) -> None:
    sim.faults.set([{"kind": kind, "group": "create", "count": 1}])
    r = req()
    with pytest.raises(errors.AmbiguousOrderState):
        await binance.create_order(r)
    sim.faults.set([{"kind": kind, "group": "create", "count": 1}])
    r2 = req()
    state = await binance.execute_trade(r2)
    assert state.status == "closed" and sim.orders_per_client_id()[r2.client_order_id] == 1
