"""CCXTAdapter: the Exchange port on ccxt.async_support (the only module importing ccxt).

Error translation (ccxt -> worker.errors), most specific first:

    any call      "execution status unknown" codes (UNKNOWN_OUTCOME: Binance
                  -1000/-1001/-1006/-1007, Bybit 10000/10016/170001/170146)
                                                           -> AmbiguousOrderState when
                                                              creating, else TransientError
                  RateLimitExceeded, DDoSProtection        -> RateLimited (transient)
                  AuthenticationError, PermissionDenied    -> AuthError
                  InsufficientFunds                        -> InsufficientFunds
                  OrderNotFound                            -> OrderNotFound
                  InvalidOrder, BadRequest (NOTIONAL...)   -> InvalidOrder
                  other ExchangeError, NotSupported        -> PermanentError
    create_order  duplicate client id (DUPLICATE_CLIENT_ID)  -> DuplicateClientOrderId
                  InvalidNonce                             -> TransientError (refused)
                  NetworkError, RequestTimeout, 5xx,
                  OperationFailed, BadResponse, anything
                  unexpected                               -> AmbiguousOrderState (reconcile)
    other calls   NetworkError, ExchangeNotAvailable,
                  OnMaintenance, OperationFailed           -> TransientError (retried)
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from decimal import Decimal
from typing import Any, Self

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
from ccxt.base import errors as ce

from worker import errors as we
from worker.exchange.ccxt_cached import CcxtCached
from worker.exchange.ccxt_parse import (
    can_find_closed_orders,
    deep_merge,
    parse_order,
    to_decimal,
)
from worker.exchange.ccxt_stream import CcxtStream
from worker.exchange.credentials import Credentials
from worker.exchange.models import MarketRules, OrderRequest, OrderState
from worker.exchange.placement import PlacementPolicy, place_once
from worker.exchange.retry import RetryPolicy, call_with_retry
from worker.exchange.seed_api import order_request
from worker.exchange.signing import signing_create, watch_signing
from worker.exchange.venue import Venue
from worker.logs import REDACTOR
from worker.settings import ExchangeConfig

LINEAR_DERIVATIVES = {"spot": "spot", "future": "linear", "swap": "linear"}
"""fetch_market_types for exchanges whose futures/swaps are USDT-margined 'linear' markets."""


UNKNOWN_OUTCOME = re.compile(
    r'"code"\s*:\s*"?-10(00|01|06|07)\b|"retCode"\s*:\s*"?(10000|10016|170001|170146)\b'
    r"|execution status unknown", re.IGNORECASE)
"""Documented answers meaning "the request may or may not have been executed"."""
DUPLICATE_CLIENT_ID = re.compile(
    r'"retCode"\s*:\s*"?(110072|170141)\b|"code"\s*:\s*"?-4116\b|OrderLinkedID is duplicate'
    r"|Duplicate order sent|Duplicate clientOrderId|ClientOrderId is duplicated", re.IGNORECASE)
"""Refusals of a create because an order with this client id already exists."""


def translate(exc: BaseException, *, creating: bool = False) -> we.ExchangeError:
    """Map a ccxt (or transport) exception to exactly one of our error classes.
    The message (it reaches events and logs) is scrubbed of signatures and keys."""
    msg = REDACTOR.scrub(f"{type(exc).__name__}: {exc}")[:500]
    text = str(exc)
    if UNKNOWN_OUTCOME.search(text):
        return we.AmbiguousOrderState(msg) if creating else we.TransientError(msg)
    if creating and DUPLICATE_CLIENT_ID.search(text):
        return we.DuplicateClientOrderId(msg)
    if isinstance(exc, ce.RateLimitExceeded | ce.DDoSProtection):
        return we.RateLimited(msg)
    if isinstance(exc, ce.AuthenticationError):
        return we.AuthError(msg)
    if isinstance(exc, ce.InsufficientFunds):
        return we.InsufficientFunds(msg)
    if isinstance(exc, ce.OrderNotFound):
        return we.OrderNotFound(msg)
    if isinstance(exc, ce.InvalidOrder | ce.BadRequest):
        return we.InvalidOrder(msg)
    if isinstance(exc, ce.ExchangeError | ce.NotSupported):
        return we.PermanentError(msg)
    if creating:
        if isinstance(exc, ce.InvalidNonce):
            return we.TransientError(msg)
        return we.AmbiguousOrderState(msg)
    if isinstance(exc, ce.OperationFailed | asyncio.TimeoutError | OSError):
        return we.TransientError(msg)
    return we.TransientError(msg)


class CCXTAdapter(CcxtCached, CcxtStream):
    """Generic ccxt exchange; subclasses add per-exchange quirks. With ``stream: true``
    the client is ccxt.pro's (same REST) and ``watch_orders`` follows the private stream."""

    client_id_param = "clientOrderId"
    default_ccxt_id: str | None = None
    fetch_market_types: dict[str, str] | None = None
    """Our market_type -> the ccxt fetchMarkets type to load (None: ccxt's default)."""

    def __init__(self, name: str, config: ExchangeConfig, credentials: Credentials | None,
                 *, retry: RetryPolicy | None = None,
                 placement: PlacementPolicy | None = None, venue: Venue | None = None
                 ) -> None:
        self.name = name
        self.config = config
        self._credentials = credentials
        self.retry = retry or RetryPolicy()
        base = placement or PlacementPolicy()
        self.placement = dataclasses.replace(
            base, settle_s=max(base.settle_s,
                               self.request_window_s() + config.clock_skew_ms / 1000
                               + config.lookup_lag_ms / 1000))
        self.client: Any = None
        self.reconciliations = 0
        self._sent_once: set[str] = set()
        self.attach(venue)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, id={self.ccxt_id!r})"

    @property
    def ccxt_id(self) -> str:
        return self.config.ccxt_id or self.default_ccxt_id or self.name

    @property
    def settle_s(self) -> float:
        """How long after *signing* a create a lookup may still miss it: the driver's
        ``request_window_s`` plus ``clock_skew_ms`` (the exchange's clock may run that far
        behind ours, which moves its deadline later on our clock) plus ``lookup_lag_ms``
        (an executed order may take that long to show up in lookups)."""
        return self.placement.settle_s

    def request_window_s(self) -> float:
        """How long after signing a create, on the exchange's clock, it may still execute.
        Generic exchanges document no bound: one client timeout plus one second."""
        return self.config.timeout_ms / 1000 + 1.0

    # -- lifecycle ---------------------------------------------------------------
    def default_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"defaultType": self.config.market_type}
        if self.fetch_market_types is not None:
            options["fetchMarkets"] = {"types": [self.fetch_market_types[
                self.config.market_type]]}
        return options

    def build_client(self) -> Any:
        cfg = self.config
        klass = getattr(ccxt_pro if cfg.stream else ccxt_async, self.ccxt_id, None)
        if klass is None:
            raise we.UnknownExchange(f"ccxt has no exchange {self.ccxt_id!r}")
        params: dict[str, Any] = {
            "enableRateLimit": cfg.rate_limit and not self.governs_rate,
            "timeout": cfg.timeout_ms,
            "options": deep_merge(self.default_options(), cfg.options),
        }
        if self._credentials is not None:
            params["apiKey"] = self._credentials.api_key.reveal()
            params["secret"] = self._credentials.secret.reveal()
            if self._credentials.password is not None:
                params["password"] = self._credentials.password.reveal()
        client = klass(params)
        client.options["maxRetriesOnFailure"] = 0  # a create is never re-sent blindly
        watch_signing(client)
        self.hook_responses(client)
        if cfg.sandbox:
            client.set_sandbox_mode(True)
        if cfg.urls:
            client.urls = deep_merge(client.urls, cfg.urls)
        return client

    def check_capabilities(self) -> None:
        """Refuse an exchange on which a placed order cannot be found again by client id
        (see ``can_find_closed_orders``) unless ``at_most_once`` accepts that risk;
        refuse ``stream: true`` where the adapter does not know the order messages."""
        if self.config.stream and not self.stream_supported:
            raise we.UnknownExchange(
                f"exchange {self.name!r}: \"stream\": true is supported by the binance and "
                "bybit drivers only; remove it to follow orders by REST")
        if self.config.at_most_once or can_find_closed_orders(self.client.has):
            return
        raise we.UnknownExchange(
            f"exchange {self.name!r} (ccxt {self.ccxt_id!r}) cannot look up closed or "
            "canceled orders by client order id, so an ambiguous create could be placed "
            "twice; set at_most_once: true in its exchange config to run it at most once "
            "per client id (ambiguous outcomes stay unknown), or use another exchange")

    async def __aenter__(self) -> Self:
        self.client = self.build_client()
        try:
            self.check_capabilities()
            if self.config.stream:
                self.hook_stream()
            await self.load_markets_once()
        except BaseException:
            await self.client.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_stream()
        if self.client is not None:
            await self.client.close()

    async def _call(self, op: str, fn: Any, *args: Any, **kw: Any) -> Any:
        async def once() -> Any:
            await self.budget.acquire(op)
            try:
                return await fn(*args, **kw)
            except we.ExchangeError:
                raise
            except Exception as exc:
                raise translate(exc) from exc

        return await call_with_retry(self.retry, op, once)

    # -- market data -------------------------------------------------------------
    async def get_market_rules(self, symbol: str) -> MarketRules:
        try:
            m = self.client.market(symbol)
        except Exception as exc:
            raise translate(exc) from exc
        precision, limits = m.get("precision", {}), m.get("limits", {})
        return MarketRules(
            symbol=symbol, base=m["base"], quote=m["quote"],
            amount_step=to_decimal(precision.get("amount")),
            price_step=to_decimal(precision.get("price")),
            min_amount=to_decimal(limits.get("amount", {}).get("min")),
            min_notional=to_decimal(limits.get("cost", {}).get("min")))

    # -- trading -------------------------------------------------------------------
    def create_params(self, req: OrderRequest) -> dict[str, Any]:
        params: dict[str, Any] = {self.client_id_param: req.client_order_id}
        if req.type == "limit":
            params["timeInForce"] = req.time_in_force
        return params

    async def execute_trade(self, request: OrderRequest | None = None, *,
                            assume_absent: bool = False, symbol: str | None = None,
                            side: str | None = None,
                            amount: Decimal | float | str | None = None,
                            type: str = "market", price: Decimal | float | str | None = None,
                            client_order_id: str | None = None) -> OrderState:
        """Place ``request`` (or the seed form ``symbol=, side=, amount=[, type, price]``,
        see ``seed_api``) at most once per client order id."""
        request = order_request(request, symbol=symbol, side=side, amount=amount, type=type,
                                price=price, client_order_id=client_order_id)

        def counted() -> None:
            self.reconciliations += 1

        if self.config.at_most_once and not can_find_closed_orders(self.client.has):
            return await self._at_most_once(request)
        return await place_once(self, request, self.placement, on_reconcile=counted,
                                assume_absent=assume_absent)

    async def _at_most_once(self, req: OrderRequest) -> OrderState:
        """One create per client id in this process; an ambiguous one stays unknown."""
        sent = self._sent_once
        found = await self.find_order(req.symbol, req.client_order_id)
        if found is not None:
            return found
        if req.client_order_id in sent:
            raise we.AmbiguousOrderState(
                f"{req.client_order_id} was sent before and cannot be found (at-most-once "
                f"mode on {self.name!r}): outcome unknown, not re-created")
        sent.add(req.client_order_id)
        return await self.create_order(req)

    def _precise(self, req: OrderRequest) -> tuple[str, str | None]:
        """Round to the market's precision (amount down) and check minimums locally."""
        try:
            amount = self.client.amount_to_precision(req.symbol, str(req.amount))
            price = (self.client.price_to_precision(req.symbol, str(req.price))
                     if req.price is not None else None)
        except Exception as exc:  # ccxt raises InvalidOrder for amounts below precision
            raise translate(exc) from exc
        limits = self.client.market(req.symbol).get("limits", {})
        min_amount = to_decimal(limits.get("amount", {}).get("min"))
        if min_amount is not None and Decimal(amount) < min_amount:
            raise we.InvalidOrder(f"amount {amount} below lot minimum {min_amount}")
        return amount, price

    async def create_order(self, req: OrderRequest) -> OrderState:
        """One create call; never retried here (see placement.place_once)."""
        amount, price = self._precise(req)
        await self.budget.acquire("create_order", orders=1)
        try:
            with signing_create():
                raw = await self.client.create_order(req.symbol, req.type, req.side, amount,
                                                     price, self.create_params(req))
        except we.FenceExpired:
            raise  # refused at signing: never sent
        except Exception as exc:
            raise translate(exc, creating=True) from exc
        state = self.parse_order(raw, req)
        if state.status == "open" and state.filled == 0 and not raw.get("status"):
            try:  # ack-only response: accepted, state unknown until looked up
                state = await self.get_order(req.symbol, state.id)
            except we.ExchangeError as exc:
                raise we.AmbiguousOrderState(
                    f"order {state.id} accepted, follow-up lookup failed: {exc}") from exc
        self.on_placed(state)
        return state

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        """Generic lookup: open orders, then recent closed/canceled ones."""
        lookups = (("fetch_open_orders", "fetchOpenOrders"),
                   ("fetch_canceled_and_closed_orders", "fetchCanceledAndClosedOrders"),
                   ("fetch_closed_orders", "fetchClosedOrders"),
                   ("fetch_canceled_orders", "fetchCanceledOrders"),
                   ("fetch_orders", "fetchOrders"))
        for method, capability in lookups:
            if not self.client.has.get(capability):
                continue
            orders = await self._call(method, getattr(self.client, method), symbol)
            for raw in orders:
                if raw.get("clientOrderId") == client_order_id:
                    return self.parse_order(raw)
        return None

    async def get_order(self, symbol: str, order_id: str) -> OrderState:
        raw = await self._call("fetch_order", self.client.fetch_order, order_id, symbol)
        return self.parse_order(raw)

    async def cancel_order(self, symbol: str, order_id: str) -> OrderState:
        await self._call("cancel_order", self.client.cancel_order, order_id, symbol)
        return await self.get_order(symbol, order_id)

    async def get_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        rows = await self._call("fetch_open_orders", self.client.fetch_open_orders, symbol)
        return [self.parse_order(r) for r in rows]

    async def get_order_history(self, symbol: str, limit: int = 100) -> list[OrderState]:
        rows = await self._call("fetch_orders", self.client.fetch_orders, symbol, None, limit)
        return [self.parse_order(r) for r in rows]

    def parse_order(self, raw: dict[str, Any], req: OrderRequest | None = None) -> OrderState:
        return parse_order(raw, req)

    def _translate(self, exc: BaseException) -> we.ExchangeError:
        return exc if isinstance(exc, we.ExchangeError) else translate(exc)
