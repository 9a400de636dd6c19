"""Adapter safety rules that need no server: capability check, fee sums, error codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ccxt.base import errors as ce

from worker import errors
from worker.exchange.ccxt_adapter import CCXTAdapter, translate
from worker.exchange.ccxt_parse import parse_order
from worker.exchange.credentials import Credentials
from worker.exchange.models import OrderRequest, OrderState
from worker.settings import ExchangeConfig


async def test_exchange_that_cannot_find_closed_orders_is_refused_at_enter() -> None:
    ex = CCXTAdapter("stamp", ExchangeConfig(driver="ccxt", ccxt_id="bitstamp"),
                     Credentials("k" * 8, "s" * 8))
    with pytest.raises(errors.UnknownExchange, match=r"'stamp'.*bitstamp.*at_most_once"):
        await ex.__aenter__()


def test_at_most_once_mode_accepts_it_and_capable_exchanges_pass() -> None:
    for ccxt_id, at_most_once in (("bitstamp", True), ("binance", False), ("bybit", False)):
        ex = CCXTAdapter("x", ExchangeConfig(driver="ccxt", ccxt_id=ccxt_id,
                                             at_most_once=at_most_once), None)
        ex.client = ex.build_client()
        ex.check_capabilities()  # no raise


@pytest.mark.parametrize("body", [
    'binance {"code":-1007,"msg":"Timeout waiting for response from backend server."}',
    'binance {"code":-1006,"msg":"An unexpected response was received."}',
    'bybit {"retCode":10016,"retMsg":"System error. Please try again later."}',
    'bybit {"retCode":170146,"retMsg":"Order creation timeout"}',
])
@pytest.mark.parametrize("klass", [ce.ExchangeError, ce.InvalidOrder, ce.BadResponse])
def test_unknown_outcome_codes_are_ambiguous_on_create_transient_otherwise(
        body: str, klass: type[Exception]) -> None:
    exc = klass(body)
    assert type(translate(exc, creating=True)) is errors.AmbiguousOrderState
    assert type(translate(exc)) is errors.TransientError


@pytest.mark.parametrize("body", [
    'bybit {"retCode":110072,"retMsg":"OrderLinkedID is duplicate"}',
    'binance {"code":-2010,"msg":"Duplicate order sent."}',
])
def test_duplicate_client_id_on_create_reconciles(body: str) -> None:
    assert isinstance(translate(ce.InvalidOrder(body), creating=True),
                      errors.DuplicateClientOrderId)
    assert type(translate(ce.InvalidOrder(body))) is errors.InvalidOrder


def test_fees_are_summed_per_currency() -> None:
    raw = {"id": "1", "status": "closed", "amount": 1, "filled": 1,
           "fees": [{"cost": 0.1, "currency": "BNB"}, {"cost": 0.2, "currency": "USDT"},
                    {"cost": 0.3, "currency": "USDT"}]}
    state = parse_order(raw)
    assert state.fees == {"BNB": Decimal("0.1"), "USDT": Decimal("0.5")}
    assert state.fee == 0 and state.fee_currency is None
    one = parse_order({**raw, "fees": raw["fees"][1:]})
    assert one.fee == Decimal("0.5") and one.fee_currency == "USDT"


async def test_at_most_once_mode_never_sends_a_client_id_twice() -> None:
    ex = CCXTAdapter("stamp", ExchangeConfig(driver="ccxt", ccxt_id="bitstamp",
                                             at_most_once=True), None)
    ex.client = ex.build_client()
    sent: list[str] = []

    async def find(symbol: str, cid: str) -> None:
        return None  # bitstamp cannot see a filled order

    async def create(req: OrderRequest) -> OrderState:
        sent.append(req.client_order_id)
        raise errors.AmbiguousOrderState("timeout")

    ex.find_order = find  # type: ignore[method-assign,assignment]
    ex.create_order = create  # type: ignore[method-assign]
    request = OrderRequest(symbol="BTC/USD", side="buy", type="market", amount=Decimal(1),
                           client_order_id="ow-1")
    for _ in range(2):
        with pytest.raises(errors.AmbiguousOrderState):
            await ex.execute_trade(request)
    assert sent == ["ow-1"]
    await ex.client.close()


async def test_factory_check_names_the_incapable_exchange_before_any_command() -> None:
    from worker.exchange.factory import ExchangeFactory
    from worker.settings import load_settings

    ok = ExchangeFactory(load_settings({"OW_EXCHANGES": (
        '{"b": {"driver": "bybit", "sandbox": true}, "s": {"driver": "ccxt", '
        '"ccxt_id": "bitstamp", "at_most_once": true, "live": true}}')}))
    await ok.check_exchanges()
    bad = ExchangeFactory(load_settings(
        {"OW_EXCHANGES": '{"stamp": {"driver": "ccxt", "ccxt_id": "bitstamp", "live": true}}'}))
    with pytest.raises(errors.UnknownExchange, match="'stamp'"):
        await bad.check_exchanges()
