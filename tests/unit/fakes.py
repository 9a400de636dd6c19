"""Scripted exchange pieces for unit tests."""

from __future__ import annotations

from collections.abc import Callable

from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.paper import PaperExchange


class ScriptedPaper(PaperExchange):
    """Paper exchange whose create can be scripted to fail (optionally after accepting),
    and which counts the orders it really created."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.create_faults: list[tuple[Exception, bool]] = []
        self.hidden_lookups = 0
        self.created = 0
        self.on_get: Callable[[], None] | None = None
        self.on_open: Callable[[], None] | None = None
        self.hide_open = 0

    async def create_order(self, req: OrderRequest) -> OrderState:
        if self.create_faults:
            exc, accept_first = self.create_faults.pop(0)
            if accept_first:
                await super().create_order(req)
                self.created += 1
            raise exc
        state = await super().create_order(req)
        self.created += 1
        return state

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        if self.hidden_lookups:
            self.hidden_lookups -= 1
            return None
        return await super().find_order(symbol, client_order_id)

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        if self.on_get is not None:
            self.on_get()
        return await super().get_order(symbol, order_id)

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        if self.on_open is not None:
            self.on_open()
        if self.hide_open:
            self.hide_open -= 1
            return []
        return await super().get_open_orders(symbol)

    def orders_for(self, client_order_id: str) -> int:
        return sum(o.req.client_order_id == client_order_id for o in self._orders.values())
