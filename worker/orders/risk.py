"""Pre-trade risk checks, run only before a *new* order is placed.

Checks, in order: exchange minimums, max notional, price protection (limit
price band against the ticker; market reference price against
``max_slippage_bps``; a price older than ``max_price_age_s`` refuses), position
limit, free balance.

An exchange that keeps cached state (``CachedRiskState``: the ccxt adapters' ticker
cache and balance ledger) answers from it, so the steady state sends no request
for the check; any other is asked directly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, TypeGuard, runtime_checkable

from schemas import RejectReason
from worker.errors import InvalidOrder, RiskRejected
from worker.exchange.models import Balance
from worker.exchange.ports import Exchange
from worker.orders.validation import ValidOrder
from worker.settings import RiskLimits

BPS = Decimal(10_000)


@runtime_checkable
class CachedRiskState(Protocol):
    """Risk inputs from cache: a price with its age in seconds (None: none could be
    had; TransientError when the exchange failed to give one), and balances from a
    local ledger."""

    async def risk_price(self, symbol: str, max_age_s: float
                         ) -> tuple[Decimal | None, float]: ...

    async def risk_balances(self) -> dict[str, Balance]: ...


_CACHED: dict[type, bool] = {}


def _cached(exchange: Exchange) -> TypeGuard[CachedRiskState]:
    """``isinstance(exchange, CachedRiskState)``, once per type (a runtime protocol check
    walks the protocol's members on every call: ~30 us on each order)."""
    kind = type(exchange)
    known = _CACHED.get(kind)
    if known is None:
        known = _CACHED[kind] = isinstance(exchange, CachedRiskState)
    return known


async def _price(exchange: Exchange, symbol: str, limits: RiskLimits) -> Decimal:
    if not _cached(exchange):
        return await exchange.get_ticker_price(symbol)
    price, age = await exchange.risk_price(symbol, limits.max_price_age_s)
    if price is None or age > limits.max_price_age_s:
        raise RiskRejected(RejectReason.RISK_PRICE_PROTECTION,
                           f"no price of {symbol} younger than {limits.max_price_age_s}s "
                           f"(the last is {age:.1f}s old)")
    return price


def _price_protection(order: ValidOrder, ticker: Decimal, limits: RiskLimits) -> None:
    cmd = order.command
    buy = cmd.side == "buy"
    if cmd.type == "limit":
        assert order.price is not None
        band = ticker * Decimal(limits.price_band_bps) / BPS
        if (buy and order.price > ticker + band) or (not buy and order.price < ticker - band):
            raise RiskRejected(RejectReason.RISK_PRICE_PROTECTION,
                               f"limit {order.price} is beyond {limits.price_band_bps} bps "
                               f"of ticker {ticker}")
    elif order.price is not None:
        slip = order.price * Decimal(cmd.max_slippage_bps) / BPS
        if (buy and ticker > order.price + slip) or (not buy and ticker < order.price - slip):
            raise RiskRejected(RejectReason.RISK_PRICE_PROTECTION,
                               f"ticker {ticker} moved beyond {cmd.max_slippage_bps} bps "
                               f"of reference {order.price}")


async def check_risk(order: ValidOrder, exchange: Exchange, limits: RiskLimits,
                     *, spot: bool = True,
                     resting: tuple[Decimal, Decimal] = (Decimal(0), Decimal(0))) -> Decimal:
    """Raise RiskRejected/InvalidOrder, or return the ticker price used.

    The position limit counts resting orders as if they filled, and sums every leg
    (hedge mode reports a long and a short position for one symbol)."""
    cmd = order.command
    ticker = await _price(exchange, cmd.symbol, limits)
    rules = await exchange.get_market_rules(cmd.symbol)
    ref_price = order.price if cmd.type == "limit" and order.price is not None else ticker
    notional = order.amount * ref_price
    if rules.min_amount is not None and order.amount < rules.min_amount:
        raise InvalidOrder(f"amount {order.amount} below market minimum {rules.min_amount}")
    if rules.min_notional is not None and notional < rules.min_notional:
        raise InvalidOrder(f"notional {notional:.8f} below market minimum {rules.min_notional}")
    if notional > limits.max_notional:
        raise RiskRejected(RejectReason.RISK_MAX_NOTIONAL,
                           f"notional {notional:.2f} exceeds max {limits.max_notional}")
    _price_protection(order, ticker, limits)

    signed = order.amount if cmd.side == "buy" else -order.amount
    balances = await (exchange.risk_balances() if _cached(exchange)
                      else exchange.get_balances())
    current = Decimal(0)
    if spot:  # the position is the base-asset holding
        current = balances[rules.base].total if rules.base in balances else Decimal(0)
    else:
        for pos in await exchange.get_positions():
            if pos.symbol == cmd.symbol:
                current += -pos.amount if pos.side == "short" else pos.amount
    rest_buy, rest_sell = resting  # (buy, sell) amounts resting on this symbol
    worst = current + signed + (rest_buy if cmd.side == "buy" else -rest_sell)
    if abs(worst) > limits.max_position:
        raise RiskRejected(RejectReason.RISK_POSITION_LIMIT,
                           f"position could reach {worst} with resting orders, "
                           f"limit {limits.max_position}")

    if limits.check_balance:
        buffer = 1 + Decimal(limits.fee_buffer_bps) / BPS
        if cmd.side == "buy" or not spot:
            asset, need = rules.quote, notional * buffer
        else:
            asset, need = rules.base, order.amount
        free = balances[asset].free if asset in balances else Decimal(0)
        if need > free:
            raise RiskRejected(RejectReason.RISK_BALANCE,
                               f"needs {need:.8f} {asset}, free {free:.8f}")
    return ticker
