"""Bybit v5 quirks on top of the generic ccxt adapter.

* client id: ``orderLinkId`` (never reusable: a duplicate is refused with 110072).
* a create answers only orderId/orderLinkId, so the adapter looks the order up.
* lookups go to the raw endpoints, not ccxt's helpers: ``fetch_closed_orders``
  adds ``orderStatus=Filled`` (canceled orders invisible) and ``fetch_order``
  refuses without ``acknowledged``. An order is searched in ``/v5/order/realtime``
  by orderId/orderLinkId (open and recently closed orders), then in
  ``/v5/order/history`` without a status filter (after an exchange restart closed
  orders are only there, and history shows them with a documented delay).
* ccxt reads ``PartiallyFilledCanceled`` as "closed"; it is a canceled order.
* stream (``stream: true``): the v5 private stream's ``order`` topic (ccxt.pro), one
  stream for every category: rows of other categories are skipped.
  ``urls: {"ws": "ws://host:port"}`` points it there.
"""

from __future__ import annotations

from typing import Any

import msgspec

from worker.errors import OrderNotFound
from worker.exchange.budget import RateSpec
from worker.exchange.ccxt_adapter import LINEAR_DERIVATIVES, CCXTAdapter
from worker.exchange.models import OrderRequest, OrderState

_CANCELED = frozenset({"PartiallyFilledCanceled", "Deactivated"})


LIMITS = RateSpec(
    ip_windows={"requests_5s": (600, 5)},
    order_windows={"creates_1s": (10, 1)},
    default_weight=1,
    endpoint_windows={"/v5/order/create": "creates_1s"})
"""Bybit v5 ("Rate Limit Rules"): 600 requests per 5 s per IP; per account per endpoint
per second, the strictest being order creation (10/s on derivatives; spot allows 20).
Every call weighs 1 against the IP; creates also count in their own 1 s window, corrected
by the endpoint's ``X-Bapi-Limit`` / ``X-Bapi-Limit-Status`` answer headers."""


class BybitExchange(CCXTAdapter):
    client_id_param = "orderLinkId"
    default_ccxt_id = "bybit"
    fetch_market_types = LINEAR_DERIVATIVES

    @classmethod
    def rate_spec(cls, market_type: str) -> RateSpec:
        return LIMITS

    def request_window_s(self) -> float:
        """Bybit v5 accepts a request while ``server_time - recv_window <= timestamp <
        server_time + 1000``, checked where it arrives; it documents no deadline inside
        the exchange (10016 / 170146 "unknown" answers come after internal timeouts), so
        one client timeout is added for that. ``clock_skew_ms`` adds how far Bybit's clock
        may lag ours."""
        return (int(self.config.options.get("recvWindow", 5000)) + self.config.timeout_ms) / 1000

    stream_supported = True

    def build_client(self) -> Any:
        """``urls: {"rest": "http://host:port"}`` points every Bybit REST base there,
        ``{"ws": "ws://host:port"}`` the private stream."""
        rest = self.config.urls.get("rest")
        ws = self.config.urls.get("ws")
        client = super().build_client()
        if isinstance(rest, str):
            client.urls["api"] = {k: v if k == "ws" else rest.rstrip("/")
                                  for k, v in client.urls["api"].items()}
        if isinstance(ws, str) and self.config.stream:  # ccxt.pro clients have ws urls
            private = client.urls["api"]["ws"]["private"]
            private["contract"] = private["unified"] = ws.rstrip("/") + "/v5/private"
        return client

    def stream_orders_of(self, message: Any) -> list[dict[str, Any]]:
        rows = message.get("data") if isinstance(message, dict) else None
        return [self.client.parse_order(r) for r in rows or [] if isinstance(r, dict)]

    def stream_state(self, raw: dict[str, Any]) -> OrderState | None:
        category = (raw.get("info") or {}).get("category")
        ours = "spot" if self.config.market_type == "spot" else "linear"
        return self.parse_order(raw) if category == ours else None

    async def _lookup(self, symbol: str, **query: str) -> OrderState | None:
        market = self.client.market(symbol)
        category = "spot" if market.get("spot") else (
            "inverse" if market.get("inverse") else "linear")
        request = {"category": category, "symbol": market["id"], **query}
        for endpoint in ("privateGetV5OrderRealtime", "privateGetV5OrderHistory"):
            response = await self._call(endpoint, getattr(self.client, endpoint), request)
            rows = (response.get("result") or {}).get("list") or []
            if rows:
                return self.parse_order(self.client.parse_order(rows[0], market))
        return None

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        return await self._lookup(symbol, orderLinkId=client_order_id)

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        found = await self._lookup(symbol, orderId=order_id)
        if found is None:
            raise OrderNotFound(f"bybit order {order_id} not found")
        return found

    async def get_order_history(self, symbol: str, limit: int = 100) -> list[OrderState]:
        """Open orders, then closed and canceled ones (ccxt has no fetchOrders for Bybit)."""
        rows = [*await self._call("fetch_open_orders", self.client.fetch_open_orders, symbol),
                *await self._call("fetch_canceled_and_closed_orders",
                                  self.client.fetch_canceled_and_closed_orders, symbol, None,
                                  limit)]
        return [self.parse_order(r) for r in rows][:limit]

    def parse_order(self, raw: dict[str, Any], req: OrderRequest | None = None) -> OrderState:
        state = super().parse_order(raw, req)
        info = raw.get("info") or {}
        if info.get("orderStatus") in _CANCELED and state.status != "canceled":
            return msgspec.structs.replace(state, status="canceled")
        return state
