"""Issue 10, item 7: a lookup refused for good (auth) while reconciling an ambiguous
create leaves the outcome unknown; it never becomes a rejection."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.errors import AmbiguousOrderState, AuthError
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.placement import PlacementPolicy, place_once


class KeyRevokedMidway:
    def __init__(self) -> None:
        self.creates = 0

    async def create_order(self, request: OrderRequest) -> OrderState:
        self.creates += 1
        raise AmbiguousOrderState("timeout")

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        raise AuthError("API key lost its read permission")


async def test_auth_error_while_reconciling_is_unknown_not_rejected() -> None:
    placer = KeyRevokedMidway()
    req = OrderRequest(symbol="BTC/USDT", side="buy", type="market", amount=Decimal(1),
                       client_order_id="ow-x")
    with pytest.raises(AmbiguousOrderState, match="refused"):
        await place_once(placer, req, PlacementPolicy(lookup_delay_s=0), assume_absent=True)
    assert placer.creates == 1
