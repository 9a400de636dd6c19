"""Binance user-data streams on the simulator, as Binance documents them.

* Spot, WebSocket API (what ccxt uses): ``/ws-api/v3``, request
  ``userDataStream.subscribe.signature`` (params apiKey, timestamp, recvWindow,
  signature = HMAC-SHA256 of the sorted query), answered ``{"id", "status": 200,
  "result": {"subscriptionId": 0}}``; events then come as ``{"subscriptionId": 0,
  "event": {"e": "executionReport", ...}}``.
* Spot, listen key: ``POST/PUT/DELETE /api/v3/userDataStream`` (X-MBX-APIKEY), stream
  ``/ws/<listenKey>`` with bare ``executionReport`` events.
* USDⓈ-M: ``POST/PUT/DELETE /fapi/v1/listenKey``, stream ``/private/ws?listenKey=``
  (or ``/ws/<listenKey>``) with ``ORDER_TRADE_UPDATE`` events.

Each order change is one event (a market order that fills at once: NEW, then TRADE);
``l``/``L``/``n`` are the last fill's quantity, price and commission, ``z``/``Z`` the
cumulative ones. Faults: ``worker.lab.sim.streams``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from worker.exchange.models import OrderState
from worker.lab.sim.binance_json import BinanceError
from worker.lab.sim.streams import Change, Conn, FillDeltas, StreamHub, ms

if TYPE_CHECKING:
    from worker.lab.sim.binance import BinanceSim

_STATUS = {"closed": "FILLED", "canceled": "CANCELED", "expired": "EXPIRED",
           "rejected": "REJECTED"}
_EXEC = {"canceled": "CANCELED", "expired": "EXPIRED", "rejected": "REJECTED"}


def _s(d: Decimal | None) -> str:
    return "0" if d is None else format(d, "f")


def _status(state: OrderState) -> str:
    return _STATUS.get(state.status) or ("PARTIALLY_FILLED" if state.filled else "NEW")


def _common(state: OrderState, change: Change, exec_type: str, now: int) -> dict[str, Any]:
    return {"s": state.symbol.replace("/", ""), "c": state.client_order_id,
            "S": state.side.upper(), "o": state.type.upper(), "f": "GTC",
            "q": _s(state.amount), "p": _s(state.price), "x": exec_type,
            "X": _status(state), "i": int(state.id.lstrip("P")), "l": _s(change.qty),
            "z": _s(state.filled), "L": _s(change.price), "n": _s(change.fee),
            "N": state.fee_currency if change.fee else None, "T": now,
            "t": change.trade_id or -1, "m": False}


def execution_report(state: OrderState, change: Change, exec_type: str) -> dict[str, Any]:
    now = ms()
    quote = (state.average or Decimal(0)) * state.filled
    return {"e": "executionReport", "E": now, **_common(state, change, exec_type, now),
            "P": "0", "F": "0", "g": -1, "C": "", "r": "NONE", "I": now,
            "w": state.status == "open", "M": False, "O": state.timestamp_ms,
            "Z": _s(quote), "Y": _s(change.qty * change.price), "Q": "0",
            "W": state.timestamp_ms, "V": "NONE"}


def order_trade_update(state: OrderState, change: Change, exec_type: str) -> dict[str, Any]:
    now = ms()
    body = {**_common(state, change, exec_type, now), "ap": _s(state.average or Decimal(0)),
            "sp": "0", "b": "0", "a": "0", "R": False, "wt": "CONTRACT_PRICE",
            "ot": state.type.upper(), "ps": "BOTH", "cp": False, "rp": "0", "pP": False,
            "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}
    if body["N"] is None:
        body.pop("N")
        body.pop("n")
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": body}


def _ws_api_event(event: dict[str, Any]) -> dict[str, Any]:
    return {"subscriptionId": 0, "event": event}


class BinanceStreams:
    def __init__(self, sim: BinanceSim) -> None:
        self.sim = sim
        self.hub = StreamHub(tick=self.tick)
        self.listen_keys: dict[str, tuple[str, str]] = {}
        """listenKey -> (API key, channel 'spot' | 'futures')."""
        self.deltas = FillDeltas()
        for key, book in sim.books.items():
            book.listeners.append(partial(self.on_change, key, "spot"))
        for key, book in sim.futures.books.items():
            book.listeners.append(partial(self.on_change, key, "futures"))

    def routes(self, r: web.UrlDispatcher) -> None:
        for path, channel in (("/api/v3/userDataStream", "spot"),
                              ("/fapi/v1/listenKey", "futures")):
            r.add_post(path, partial(self.new_listen_key, channel))
            r.add_put(path, self.keep_listen_key)
            r.add_delete(path, self.close_listen_key)
        r.add_get("/ws/{listen_key}", self.listen_key_stream)
        r.add_get("/private/ws", self.listen_key_stream)
        r.add_get("/ws-api/v3", self.ws_api)

    def tick(self) -> None:
        for book in (*self.sim.books.values(), *self.sim.futures.books.values()):
            for symbol in {o.req.symbol for o in book._open.values()}:
                book._book(symbol)  # advances the walk: resting orders fill

    # -- order changes -> events ---------------------------------------------------------
    def on_change(self, key: str, channel: str, state: OrderState) -> None:
        change = self.deltas.change(channel, state)
        build = execution_report if channel == "spot" else order_trade_update
        if change.new and (change.qty > 0 or state.status != "open"):
            new = msgspec.structs.replace(state, status="open", filled=Decimal(0),
                                          remaining=state.amount, average=None,
                                          fee=Decimal(0))
            self.hub.publish(key, channel, build(new, Change(True, Decimal(0), Decimal(0),
                                                             Decimal(0), 0), "NEW"))
        exec_type = "TRADE" if change.qty > 0 else _EXEC.get(state.status, "NEW")
        self.hub.publish(key, channel, build(state, change, exec_type))

    # -- listen keys ---------------------------------------------------------------------
    def _api_key(self, request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if key not in self.sim.keys:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        return key

    async def new_listen_key(self, channel: str, request: web.Request) -> web.Response:
        key = self._api_key(request)
        for listen_key, owner in self.listen_keys.items():
            if owner == (key, channel):  # Binance returns the account's active key
                return web.json_response({"listenKey": listen_key})
        listen_key = secrets.token_urlsafe(45)[:60]
        self.listen_keys[listen_key] = (key, channel)
        return web.json_response({"listenKey": listen_key})

    async def keep_listen_key(self, request: web.Request) -> web.Response:
        self._api_key(request)
        return web.json_response({})

    async def close_listen_key(self, request: web.Request) -> web.Response:
        key = self._api_key(request)
        for listen_key, owner in list(self.listen_keys.items()):
            if owner[0] == key:
                del self.listen_keys[listen_key]
        return web.json_response({})

    async def listen_key_stream(self, request: web.Request) -> web.StreamResponse:
        listen_key = request.match_info.get("listen_key") or request.query.get("listenKey", "")
        owner = self.listen_keys.get(listen_key)
        if owner is None:
            raise web.HTTPBadRequest(text='{"code":-1125,"msg":"This listenKey does not '
                                          'exist."}')

        def setup(conn: Conn) -> None:
            conn.key, conn.channel = owner

        return await self.hub.serve(request, setup)

    # -- WebSocket API (spot) ------------------------------------------------------------
    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.serve(request, lambda conn: None, self._ws_api_request)

    async def _ws_api_request(self, conn: Conn, body: dict[str, Any]) -> list[dict[str, Any]]:
        rid, method = body.get("id"), body.get("method")
        if method == "ping":
            return [{"id": rid, "status": 200, "result": {}}]
        if method != "userDataStream.subscribe.signature":
            return [{"id": rid, "status": 400, "error": {"code": -1100,
                                                        "msg": f"unknown method {method}"}}]
        params = dict(body.get("params") or {})
        signature = str(params.pop("signature", ""))
        key = str(params.get("apiKey", ""))
        secret = self.sim.keys.get(key)
        if secret is None:
            return [{"id": rid, "status": 401, "error": {
                "code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}}]
        query = "&".join(f"{k}={params[k]}" for k in sorted(params))
        expected = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return [{"id": rid, "status": 400, "error": {
                "code": -1022, "msg": "Signature for this request is not valid."}}]
        window = int(params.get("recvWindow", 5000))
        if abs(ms() - int(params.get("timestamp", 0))) > window:
            return [{"id": rid, "status": 400, "error": {
                "code": -1021, "msg": "Timestamp for this request is outside of the "
                                      "recvWindow."}}]
        conn.key, conn.channel = key, "spot"
        conn.wrap = _ws_api_event
        return [{"id": rid, "status": 200, "result": {"subscriptionId": 0},
                 "rateLimits": []}]
