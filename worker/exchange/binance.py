"""Binance quirks on top of the generic ccxt adapter.

* client id: ``newClientOrderId`` on create, ``origClientOrderId`` on lookup
  (fetch_order by client id covers open *and* closed orders).
* Binance refuses a reused client id only while the first order is open,
  hence the lookup before every create (placement.place_once).
* markets: only the configured market type is loaded; no private currency call.
* stream (``stream: true``): spot over the WebSocket API user-data subscription,
  USDⓈ-M over a listen key (ccxt.pro); ``urls: {"ws": "ws://host:port"}`` points both
  there. A streamed order's commission is its last fill's, so streamed states carry no
  fee, as REST order states do; a filled one gets its fee from myTrades (get_order).
* fees: order endpoints carry no commission, so a filled order's fee is
  summed per currency from its trades (myTrades / userTrades by orderId). While that list
  lags (its amounts sum to less than the order's filled amount) the fee is
  unknown: TransientError, the caller retries, no wrong fee is ever reported.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from worker.errors import AmbiguousOrderState, ExchangeError, OrderNotFound, TransientError
from worker.exchange.budget import RateSpec
from worker.exchange.ccxt_adapter import LINEAR_DERIVATIVES, CCXTAdapter
from worker.exchange.ccxt_parse import single_fee, sum_fees
from worker.exchange.models import OrderRequest, OrderState

DEFAULT_RECV_WINDOW_MS = 5000
_HOSTS = ("https://api.binance.com", "https://testnet.binance.vision",
          "https://fapi.binance.com", "https://testnet.binancefuture.com",
          "https://demo-fapi.binance.com")


SPOT_LIMITS = RateSpec(
    ip_windows={"weight_1m": (6000, 60)},
    order_windows={"orders_10s": (100, 10), "orders_1d": (200_000, 86_400)},
    weights={"create_order": 1, "cancel_order": 1, "fetch_order": 4, "fetch_open_orders": 6,
             "fetch_orders": 20, "fetch_my_trades": 20, "fetch_balance": 20,
             "load_markets": 20, "fetch_ticker": 2, "fetch_tickers": 2, "fetch_ohlcv": 2,
             "fetch_trading_fees": 1, "fetch_trading_fee": 1, "fetch_positions": 20},
    ip_headers={"x-mbx-used-weight-1m": "weight_1m"},
    order_headers={"x-mbx-order-count-10s": "orders_10s", "x-mbx-order-count-1d": "orders_1d"})
"""Binance spot (REST API docs, "LIMITS" and each endpoint's weight): request weight
6000 per minute per IP; 100 orders per 10 s and 200,000 per day per account."""
FUTURES_LIMITS = RateSpec(
    ip_windows={"weight_1m": (2400, 60)},
    order_windows={"orders_10s": (300, 10), "orders_1m": (1200, 60)},
    weights={"create_order": 0, "cancel_order": 1, "fetch_order": 1, "fetch_open_orders": 1,
             "fetch_orders": 5, "fetch_my_trades": 5, "fetch_balance": 5, "load_markets": 1,
             "fetch_ticker": 1, "fetch_tickers": 40, "fetch_ohlcv": 5, "fetch_positions": 5,
             "fetch_trading_fee": 20},
    ip_headers={"x-mbx-used-weight-1m": "weight_1m"},
    order_headers={"x-mbx-order-count-10s": "orders_10s", "x-mbx-order-count-1m": "orders_1m"})
"""Binance USDⓈ-M futures: weight 2400 per minute per IP; 300 orders per 10 s and 1200
per minute per account (a new order costs no IP weight)."""


class BinanceExchange(CCXTAdapter):
    client_id_param = "newClientOrderId"
    default_ccxt_id = "binance"
    fetch_market_types = LINEAR_DERIVATIVES

    @classmethod
    def rate_spec(cls, market_type: str) -> RateSpec:
        return SPOT_LIMITS if market_type == "spot" else FUTURES_LIMITS

    def request_window_s(self) -> float:
        """Binance processes a signed request only while ``serverTime - timestamp <=
        recvWindow`` (and ``timestamp < serverTime + 1000``), checked on arrival and again
        when the matching engine takes the order; so a create executes until timestamp +
        recvWindow on Binance's clock, whatever delays it (-1006/-1007 "execution status
        unknown" included). ``clock_skew_ms`` adds how far that clock may lag ours."""
        return self.recv_window_ms() / 1000

    def recv_window_ms(self) -> int:
        return int(self.config.options.get("recvWindow", DEFAULT_RECV_WINDOW_MS))

    def default_options(self) -> dict[str, Any]:
        return {
            **super().default_options(),
            "recvWindow": DEFAULT_RECV_WINDOW_MS,
            "fetchCurrencies": False,
            "fetchMargins": False,
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        }

    stream_supported = True

    def build_client(self) -> Any:
        """``urls: {"rest": "http://host:port"}`` points every Binance REST base there,
        ``{"ws": "ws://host:port"}`` the user-data streams."""
        rest = self.config.urls.get("rest")
        client = super().build_client()
        ws = self.config.urls.get("ws")
        if isinstance(ws, str) and self.config.stream:  # ccxt.pro clients have ws urls
            base = ws.rstrip("/")
            client.urls["api"]["ws"]["spot"] = client.urls["api"]["ws"]["linear"] = base + "/ws"
            client.urls["api"]["ws"]["ws-api"]["spot"] = base + "/ws-api/v3"
        if isinstance(rest, str):
            base = rest.rstrip("/")
            for key, url in list(client.urls["api"].items()):
                if isinstance(url, str) and url.startswith(_HOSTS):
                    client.urls["api"][key] = base + "/" + url.split("/", 3)[3]
            by_url = client.get_exceptions_by_url

            def exceptions_by_url(url: str | None, kind: str) -> Any:
                """ccxt picks its spot/futures error codes by host: map ours back."""
                if url and url.startswith(base + "/"):
                    path = url[len(base):]
                    host = "fapi" if path.startswith("/fapi/") else (
                        "dapi" if path.startswith("/dapi/") else "api")
                    url = f"https://{host}.binance.com{path}"
                return by_url(url, kind)

            client.get_exceptions_by_url = exceptions_by_url
        return client

    def stream_orders_of(self, message: Any) -> list[dict[str, Any]]:
        return [self.client.parse_ws_order(message)]

    def stream_state(self, raw: dict[str, Any]) -> OrderState | None:
        state = self.parse_order(raw)
        return msgspec.structs.replace(state, fee=Decimal(0), fee_currency=None, fees={})

    def create_params(self, req: OrderRequest) -> dict[str, Any]:
        params = super().create_params(req)
        # spot FULL carries the fills; futures know RESULT (the state after matching)
        params["newOrderRespType"] = "FULL" if self.config.market_type == "spot" else "RESULT"
        return params

    async def create_order(self, req: OrderRequest) -> OrderState:
        """Futures responses carry no commission: a filled order's fee comes from its
        trades. A failure there says nothing about the order, which exists: ambiguous,
        so placement adopts it by lookup (never reads it as refused)."""
        state = await super().create_order(req)
        try:
            return await self._with_fees(state)
        except ExchangeError as exc:
            raise AmbiguousOrderState(f"order {state.id} placed, fee lookup failed: {exc}"
                                      ) from exc

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        try:
            raw = await self._call("fetch_order", self.client.fetch_order, None, symbol,
                                   {"origClientOrderId": client_order_id})
        except OrderNotFound:
            return None
        return await self._with_fees(self.parse_order(raw))

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        return await self._with_fees(await super().get_order(symbol, order_id))

    async def _with_fees(self, state: OrderState) -> OrderState:
        if not state.is_terminal or state.filled == 0 or state.fees:
            return state
        trades = await self._call("fetch_my_trades", self.client.fetch_my_trades,
                                  state.symbol, None, None, {"orderId": state.id})
        traded = sum((Decimal(str(t.get("amount") or 0)) for t in trades), Decimal(0))
        if traded < state.filled:
            raise TransientError(f"trades of order {state.id} lag: {traded} of "
                                 f"{state.filled} listed; fee not known yet")
        fees = sum_fees([t.get("fee") for t in trades])
        fee, ccy = single_fee(fees)
        return msgspec.structs.replace(state, fee=fee, fee_currency=ccy, fees=fees)
