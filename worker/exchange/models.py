"""Typed results of the exchange ports (Decimal for every amount and price)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

OrderStatus = Literal["open", "closed", "canceled", "rejected", "expired"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"closed", "canceled", "rejected", "expired"})


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"]
    amount: Decimal
    client_order_id: str
    price: Decimal | None = None
    time_in_force: Literal["GTC", "IOC", "FOK"] = "GTC"


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    status: OrderStatus
    amount: Decimal
    filled: Decimal
    remaining: Decimal
    price: Decimal | None = None
    average: Decimal | None = None
    fee: Decimal = Decimal(0)
    """The fee when it is paid in one currency (``fee_currency``); 0 when in several."""
    fee_currency: str | None = None
    timestamp_ms: int | None = None
    fees: dict[str, Decimal] = {}
    """Every fee summed per currency."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Candle(msgspec.Struct, frozen=True, array_like=True):
    timestamp_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """Net exposure in one instrument: a spot base-asset holding or a derivatives position."""

    symbol: str
    side: Literal["long", "short", "flat"]
    amount: Decimal
    entry_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None


class MarketRules(msgspec.Struct, frozen=True, kw_only=True):
    """Precision and minimums of one market, used before anything is sent."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    price_step: Decimal | None = None
    min_amount: Decimal | None = None
    min_notional: Decimal | None = None
