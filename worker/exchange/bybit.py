"""Bybit quirks: ``orderLinkId`` is the client id; fetch_order needs an order id, so a
lookup by client id searches open, then closed and canceled orders with that link id."""

from __future__ import annotations

from worker.errors import OrderNotFound
from worker.exchange.ccxt_adapter import LINEAR_DERIVATIVES, CCXTAdapter
from worker.exchange.models import OrderState


class BybitExchange(CCXTAdapter):
    client_id_param = "orderLinkId"
    default_ccxt_id = "bybit"
    fetch_market_types = LINEAR_DERIVATIVES

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        params = {"orderLinkId": client_order_id}
        for method in (self.client.fetch_open_orders,
                       self.client.fetch_canceled_and_closed_orders):
            rows = await self._call(method.__name__, method, symbol, None, None, params)
            for raw in rows:
                if raw.get("clientOrderId") == client_order_id:
                    return self.parse_order(raw)
        return None

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        for method in (self.client.fetch_open_order, self.client.fetch_closed_order):
            try:
                raw = await self._call(method.__name__, method, order_id, symbol)
            except OrderNotFound:
                continue  # not in this list; try the next one
            return self.parse_order(raw)
        raise OrderNotFound(f"bybit order {order_id} not found")
