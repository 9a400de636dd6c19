"""Derivatives: positions parsed from ccxt, and risk using them instead of spot balances."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from schemas import RejectReason
from tests.conftest import place
from worker.errors import RiskRejected
from worker.exchange.ccxt_adapter import CCXTAdapter
from worker.exchange.credentials import Credentials
from worker.exchange.models import Balance, MarketRules, Position
from worker.exchange.retry import NO_RETRY
from worker.orders.risk import check_risk
from worker.orders.validation import validate_place
from worker.settings import ExchangeConfig, RiskLimits


class StubFutures:
    async def fetch_positions(self) -> list[dict[str, Any]]:
        return [{"symbol": "BTC/USDT:USDT", "side": "short", "contracts": 3, "contractSize": 1,
                 "entryPrice": 61000.5, "unrealizedPnl": -12.5},
                {"symbol": "ETH/USDT:USDT", "side": None, "contracts": 0, "contractSize": 1}]


async def test_positions_from_ccxt() -> None:
    ex = CCXTAdapter("binanceusdm", ExchangeConfig(driver="ccxt", market_type="swap"),
                     Credentials("k" * 8, "s" * 8), retry=NO_RETRY)
    ex.client = StubFutures()
    short, flat = await ex.get_positions()
    assert short == Position(symbol="BTC/USDT:USDT", side="short", amount=Decimal(3),
                             entry_price=Decimal("61000.5"), unrealized_pnl=Decimal("-12.5"))
    assert flat.side == "flat" and flat.amount == 0


class FuturesAccount:
    """Just enough of the Exchange port for check_risk."""

    async def get_ticker_price(self, symbol: str) -> Decimal:
        return Decimal(60000)

    async def get_market_rules(self, symbol: str) -> MarketRules:
        return MarketRules(symbol=symbol, base="BTC", quote="USDT")

    async def get_balances(self) -> dict[str, Balance]:
        usdt = Decimal(1_000_000)
        return {"USDT": Balance(asset="USDT", free=usdt, used=Decimal(0), total=usdt)}

    async def get_positions(self) -> list[Position]:
        return [Position(symbol="BTC/USDT:USDT", side="short", amount=Decimal(3))]


async def test_risk_uses_the_derivatives_position() -> None:
    limits = RiskLimits(max_position=Decimal(4))
    ex: Any = FuturesAccount()
    sell = validate_place(place(symbol="BTC/USDT:USDT", side="sell", amount="1"))
    await check_risk(sell, ex, limits, spot=False)  # short 3 -> 4: at the limit, allowed
    too_short = validate_place(place(symbol="BTC/USDT:USDT", side="sell", amount="1.5"))
    with pytest.raises(RiskRejected) as info:
        await check_risk(too_short, ex, limits, spot=False)  # no base balance needed to short
    assert info.value.reason == RejectReason.RISK_POSITION_LIMIT


class HedgeAccount(FuturesAccount):
    async def get_positions(self) -> list[Position]:
        return [Position(symbol="BTC/USDT:USDT", side="long", amount=Decimal(2)),
                Position(symbol="BTC/USDT:USDT", side="short", amount=Decimal(3))]


async def test_risk_sums_both_hedge_mode_legs() -> None:
    """Issue 10, item 14: long 2 + short 3 is net short 1 (not just the last leg)."""
    ex: Any = HedgeAccount()
    limits = RiskLimits(max_position=Decimal("2.5"))
    await check_risk(validate_place(place(symbol="BTC/USDT:USDT", side="sell", amount="1")),
                     ex, limits, spot=False)  # -1 -> -2: allowed
    with pytest.raises(RiskRejected):
        await check_risk(validate_place(place(symbol="BTC/USDT:USDT", side="sell",
                                              amount="2")), ex, limits, spot=False)
