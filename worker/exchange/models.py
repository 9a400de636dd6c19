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


class Balance(msgspec.Struct, frozen=True):
    """One asset's balance. ``Balance(0)`` (or ``Balance()``) is the empty balance, a
    default for ``balances.get(asset, Balance(0))``; a positional amount is what is free."""

    free: Decimal = Decimal(0)
    used: Decimal = Decimal(0)
    total: Decimal = Decimal(0)
    """Left 0 while free or used is not: free + used."""
    asset: str = ""

    def __post_init__(self) -> None:
        free, used, total = Decimal(self.free), Decimal(self.used), Decimal(self.total)
        msgspec.structs.force_setattr(self, "free", free)
        msgspec.structs.force_setattr(self, "used", used)
        msgspec.structs.force_setattr(self, "total", total or free + used)

    @property
    def available(self) -> Decimal:
        """What can be traded now (the seed API's name for ``free``)."""
        return self.free


class TradingFee(msgspec.Struct, frozen=True, kw_only=True):
    """Maker and taker fee rates of one market (0.001 = 0.1 %)."""

    symbol: str
    maker: Decimal
    taker: Decimal


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
