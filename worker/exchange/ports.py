"""Ports of the exchange layer: small Protocols the worker depends on.

Implementations: ``PaperExchange`` (in-process, the default) and the ccxt
adapter family (``CCXTAdapter``, ``BinanceExchange``, ``BybitExchange``).
Every method raises only ``worker.errors.ExchangeError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol, Self

from worker.exchange.models import (
    Balance,
    Candle,
    MarketRules,
    OrderRequest,
    OrderState,
    Position,
    TradingFee,
)


class MarketDataProvider(Protocol):
    """Prices and candles."""

    async def get_ticker_price(self, symbol: str) -> Decimal: ...

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", limit: int = 100
    ) -> list[Candle]: ...

    async def get_market_rules(self, symbol: str) -> MarketRules: ...


class TradingOperations(Protocol):
    """Orders. ``execute_trade`` is idempotent per ``client_order_id``."""

    async def execute_trade(self, request: OrderRequest, *,
                            assume_absent: bool = False) -> OrderState:
        """Return the order with this client id, creating it at most once.

        ``assume_absent``: the caller just looked it up and found nothing."""
        ...

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """The order with this client id, or None when the exchange has none."""
        ...

    async def get_order(self, symbol: str, order_id: str) -> OrderState: ...

    async def cancel_order(self, symbol: str, order_id: str) -> OrderState:
        """Cancel; returns the order's state after the cancel (may be closed)."""
        ...

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderState]: ...

    async def get_order_history(self, symbol: str, limit: int = 100) -> list[OrderState]: ...


class AccountOperations(Protocol):
    """Balances and exposure."""

    async def get_balances(self) -> dict[str, Balance]: ...

    async def get_portfolio_value(self, quote: str = "USDT") -> Decimal: ...

    async def get_positions(self) -> list[Position]: ...


class OrderStream(Protocol):
    """Live order updates of one account over the exchange's private stream (ccxt.pro).
    REST stays the authority: an update may only make the follower learn sooner what
    polling would find (see worker.orders.stream)."""

    @property
    def streams_orders(self) -> bool:
        """The exchange config asks for the stream and the adapter supports it."""
        ...

    async def watch_orders(self) -> list[OrderState]:
        """The next order updates in arrival order (duplicates and stale ones possible).
        ``[]`` once per (re)connection, when subscribed: updates before it may be missing,
        so the caller reconciles by REST. Raises TransientError when the stream broke
        (call again to reconnect), PermanentError when it cannot work (auth)."""
        ...

    async def stop_stream(self) -> None:
        """Nobody follows the stream for now; updates until the next call are dropped."""
        ...


class Exchange(MarketDataProvider, TradingOperations, AccountOperations, Protocol):
    """One account on one exchange, with an async context-managed lifecycle."""

    name: str

    @property
    def settle_s(self) -> float:
        """How long after a create was signed the exchange may still execute it (its
        acceptance window plus the worst clock skew it accepts)."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...


class StandaloneExchange(Exchange, Protocol):
    """The seed document's module API (``factory.create_exchange``): an Exchange that
    also takes ``execute_trade(symbol=, side=, amount=[, type, price])`` and reports fees."""

    async def execute_trade(self, request: OrderRequest | None = None, *,
                            assume_absent: bool = False, symbol: str | None = None,
                            side: str | None = None,
                            amount: Decimal | float | str | None = None,
                            type: str = "market", price: Decimal | float | str | None = None,
                            client_order_id: str | None = None) -> OrderState: ...

    async def get_trading_fees(self, symbols: Sequence[str] | None = None
                               ) -> dict[str, TradingFee]: ...
