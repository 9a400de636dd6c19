"""The seed document's call forms on top of the typed ports (no ccxt, no I/O).

``execute_trade(symbol=..., side=..., amount=...)`` becomes an ``OrderRequest``
with a client order id generated once per call (``sa-`` prefix: never adopted by
the worker's start-up reconciliation, which owns ``ow-`` ids); placement reuses
that id for every internal attempt, so one call never places two orders. To
retry a call that raised, pass the ``client_order_id`` the error names (or your
own) again: the exchange lookup by that id makes the retry idempotent.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import SupportsIndex, overload

from worker.errors import CommandError
from worker.exchange.models import OrderRequest, Position

STANDALONE_PREFIX = "sa-"


def new_client_order_id() -> str:
    return STANDALONE_PREFIX + uuid.uuid4().hex[:24]


def order_request(request: OrderRequest | None, *, symbol: str | None,
                  side: str | None, amount: Decimal | float | str | None, type: str,
                  price: Decimal | float | str | None,
                  client_order_id: str | None) -> OrderRequest:
    """The request to place: ``request`` as given, or one built from the seed's keywords."""
    if request is not None:
        if symbol is not None or side is not None or amount is not None:
            raise CommandError("pass either an OrderRequest or symbol/side/amount, not both")
        return request
    if symbol is None or side not in ("buy", "sell") or amount is None:
        raise CommandError("execute_trade needs symbol, side ('buy'|'sell') and amount")
    if type not in ("market", "limit"):
        raise CommandError(f"order type {type!r} is not 'market' or 'limit'")
    return OrderRequest(symbol=symbol, side=side, type=type,  # type: ignore[arg-type]
                        amount=Decimal(str(amount)),
                        price=None if price is None else Decimal(str(price)),
                        client_order_id=client_order_id or new_client_order_id())


class Positions(list[Position]):
    """A list of positions (what the worker's risk checks iterate) that can also be
    indexed by symbol or by base asset: ``positions["BTC"]``, ``positions["BTC/USDT"]``."""

    def get(self, key: str) -> Position | None:
        for p in self:
            if p.symbol == key:
                return p
        base = key.split("/")[0]
        for p in self:
            if p.symbol.split("/")[0] == base:
                return p
        return None

    @overload
    def __getitem__(self, key: SupportsIndex) -> Position: ...

    @overload
    def __getitem__(self, key: slice) -> list[Position]: ...

    @overload
    def __getitem__(self, key: str) -> Position: ...

    def __getitem__(self, key: SupportsIndex | slice | str) -> Position | list[Position]:
        if isinstance(key, str):
            found = self.get(key)
            if found is None:
                raise KeyError(key)
            return found
        return super().__getitem__(key)
