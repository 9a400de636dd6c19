"""Bybit v5 private WebSocket stream on the simulator, as Bybit documents it.

``/v5/private``: ``{"op": "auth", "args": [apiKey, expires, signature]}`` with
signature = hex HMAC-SHA256 of ``"GET/realtime" + expires`` (expires in ms, in the
future), answered ``{"success": true, "ret_msg": "", "op": "auth", "conn_id"}``;
``{"op": "subscribe", "req_id", "args": ["order", "execution"]}``;
``{"op": "ping"}`` -> ``{"op": "pong", "args": [ms], ...}``. Topics:

* ``order``: ``{"id", "topic": "order", "creationTime", "data": [<order as
  /v5/order/realtime lists it, plus "category"; linear rows carry "tpslMode">]}``;
* ``execution``: one row per fill (execId, execQty, execPrice, execFee, ...).

One stream per account covers every category. Faults: ``worker.lab.sim.streams``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from worker.exchange.models import OrderState
from worker.lab.sim import bybit_json as bj
from worker.lab.sim.streams import Change, Conn, FillDeltas, StreamHub, ms

if TYPE_CHECKING:
    from worker.lab.sim.bybit import BybitSim

TOPICS = ("order", "execution")


def order_row(category: str, state: OrderState) -> dict[str, Any]:
    row = {**bj.order(category, state), "category": category}
    if category != "spot":
        row["tpslMode"] = "Full"
    return row


def execution_row(category: str, state: OrderState, change: Change) -> dict[str, Any]:
    ccy, _ = bj.fee_of(category, state)
    return {"category": category, "symbol": bj.market_id(state.symbol), "isLeverage": "0",
            "orderId": bj.order_id(category, state), "orderLinkId": state.client_order_id,
            "side": state.side.capitalize(), "orderPrice": format(state.price or 0, "f"),
            "orderQty": format(state.amount, "f"), "leavesQty": format(state.remaining, "f"),
            "createType": "CreateByUser", "orderType": state.type.capitalize(),
            "stopOrderType": "", "execFee": format(change.fee, "f"), "feeCurrency": ccy,
            "execId": f"e{change.trade_id}", "execPrice": format(change.price, "f"),
            "execQty": format(change.qty, "f"), "execType": "Trade",
            "execValue": format(change.qty * change.price, "f"), "execTime": str(ms()),
            "isMaker": False, "feeRate": "0.001", "tradeIv": "", "markIv": "",
            "markPrice": format(change.price, "f"), "indexPrice": "", "underlyingPrice": "",
            "blockTradeId": "", "closedSize": "0", "seq": change.trade_id}


class BybitStreams:
    def __init__(self, sim: BybitSim) -> None:
        self.sim = sim
        self.hub = StreamHub(tick=self.tick)
        self.deltas = FillDeltas()
        for key, desk in sim.desks.items():
            for category, book in desk.books.items():
                book.listeners.append(partial(self.on_change, key, category))

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v5/private", self.private)

    def tick(self) -> None:
        for desk in self.sim.desks.values():
            for book in desk.books.values():
                for symbol in {o.req.symbol for o in book._open.values()}:
                    book._book(symbol)

    def on_change(self, key: str, category: str, state: OrderState) -> None:
        change = self.deltas.change(category, state)
        now = ms()
        self.hub.publish(key, "private", {
            "id": uuid.uuid4().hex, "topic": "order", "creationTime": now,
            "data": [order_row(category, state)]}, topic="order")
        if change.qty > 0:
            self.hub.publish(key, "private", {
                "id": uuid.uuid4().hex, "topic": "execution", "creationTime": now,
                "data": [execution_row(category, state, change)]}, topic="execution")

    async def private(self, request: web.Request) -> web.StreamResponse:
        conn_id = uuid.uuid4().hex[:20]

        def setup(conn: Conn) -> None:
            conn.channel, conn.topics = "private", set()

        return await self.hub.serve(request, setup, partial(self._request, conn_id))

    async def _request(self, conn_id: str, conn: Conn,
                       body: dict[str, Any]) -> list[dict[str, Any]]:
        op, req_id = body.get("op"), body.get("req_id")
        base = {"conn_id": conn_id, **({"req_id": req_id} if req_id is not None else {})}
        if op == "ping":
            return [{**base, "op": "pong", "args": [str(ms())]}]
        if op == "auth":
            args = [*list(body.get("args") or []), "", "", ""]
            key, expires, sign = str(args[0]), str(args[1]), str(args[2])
            secret = self.sim.keys.get(key)
            if secret is None:
                return [{**base, "success": False, "ret_msg": "Invalid apikey", "op": "auth"}]
            expected = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(),
                                hashlib.sha256).hexdigest()
            if not expires.isdigit() or int(expires) < ms():
                return [{**base, "success": False, "ret_msg": "Params Error", "op": "auth"}]
            if not hmac.compare_digest(expected, sign):
                return [{**base, "success": False, "op": "auth",
                         "ret_msg": "Invalid sign"}]
            conn.key = key
            return [{**base, "success": True, "ret_msg": "", "op": "auth"}]
        if op == "subscribe":
            if conn.key is None:
                return [{**base, "success": False, "ret_msg": "Request not authorized",
                         "op": "subscribe"}]
            topics = [str(t) for t in body.get("args") or []]
            unknown = [t for t in topics if t not in TOPICS]
            if unknown:
                return [{**base, "success": False, "op": "subscribe",
                         "ret_msg": f"Invalid topic: {unknown[0]}"}]
            assert conn.topics is not None
            conn.topics.update(topics)
            return [{**base, "success": True, "ret_msg": "", "op": "subscribe"}]
        return [{**base, "success": False, "ret_msg": f"unknown op {op}", "op": str(op)}]
