"""Private WebSocket streams of the exchange simulators, with stream faults.

A ``StreamHub`` holds the open stream connections; a simulator turns paper-engine
order changes into the exchange's documented messages and ``publish``es them to the
connections of that API key (and channel / topic). Each connection has one ordered
send queue. While a connection is open a market clock advances every book, so
resting orders fill (and are pushed) without any REST request.

Faults (``POST /_admin/stream_faults``), per message, by ``count`` or ``rate``:

    drop        the message is lost (a fill that only REST shows)
    duplicate   the message is sent twice
    reorder     the message is held back and sent after the next one (out of order)
    disconnect  the connection is closed instead of sending the message (mid-fill)

and at once: ``{"stall_s": 3}`` sends nothing and answers no ping for 3 s while the
connection stays open (messages meanwhile are lost); ``{"disconnect": true}`` closes
every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from worker.exchange.models import OrderState

STREAM_FAULTS = ("drop", "duplicate", "reorder", "disconnect")
CLOCK_S = 0.05


@dataclass
class StreamRule:
    kind: str
    count: int = 0
    rate: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in STREAM_FAULTS:
            raise ValueError(f"bad stream fault {self.kind!r} (known: {STREAM_FAULTS})")


@dataclass
class Conn:
    ws: web.WebSocketResponse
    key: str | None = None
    channel: str = ""
    topics: set[str] | None = None
    """None: every message of the channel; else only these topics."""
    wrap: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    held: str | None = None


Handler = Callable[[Conn, dict[str, Any]], Awaitable[list[dict[str, Any]]]]


class StreamHub:
    def __init__(self, tick: Callable[[], None]) -> None:
        self.tick = tick
        self.conns: list[Conn] = []
        self.rules: list[StreamRule] = []
        self.stalled_until = 0.0
        self.injected: dict[str, int] = {}
        self.sent = 0
        self._rng = random.Random(1)
        self._clock: asyncio.Task[None] | None = None

    # -- faults ------------------------------------------------------------------------
    def set_faults(self, body: dict[str, Any]) -> None:
        if "rules" in body:
            self.rules = [StreamRule(**r) for r in body["rules"]]
        if body.get("seed") is not None:
            self._rng = random.Random(body["seed"])
        if body.get("stall_s"):
            self.stalled_until = time.monotonic() + float(body["stall_s"])
            self._count("stall")
        if body.get("disconnect"):
            for conn in self.conns:
                conn.queue.put_nowait(None)
            self._count("disconnect_all")

    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _pick(self) -> str | None:
        for rule in self.rules:
            if rule.count > 0:
                rule.count -= 1
                self._count(rule.kind)
                return rule.kind
            if rule.rate > 0 and self._rng.random() < rule.rate:
                self._count(rule.kind)
                return rule.kind
        return None

    # -- sending ---------------------------------------------------------------------
    def publish(self, key: str, channel: str, payload: dict[str, Any],
                topic: str | None = None) -> None:
        encoded: dict[int, str] = {}  # one encoding per wrapping
        for conn in self.conns:
            if conn.key != key or conn.channel != channel:
                continue
            if conn.topics is not None and topic not in conn.topics:
                continue
            text = encoded.get(id(conn.wrap))
            if text is None:
                text = encoded[id(conn.wrap)] = json.dumps(
                    conn.wrap(payload) if conn.wrap else payload)
            self._offer(conn, text)

    def _offer(self, conn: Conn, text: str) -> None:
        if self.stalled():
            self._count("lost_in_stall")
            return
        kind = self._pick()
        if kind == "drop":
            return
        if kind == "disconnect":
            conn.queue.put_nowait(None)
            return
        if kind == "reorder" and conn.held is None:
            conn.held = text
            asyncio.get_running_loop().call_later(0.3, self._release, conn, text)
            return
        conn.queue.put_nowait(text)
        if kind == "duplicate":
            conn.queue.put_nowait(text)
        self._release(conn, conn.held)

    @staticmethod
    def _release(conn: Conn, text: str | None) -> None:
        if text is not None and conn.held == text:
            conn.held = None
            conn.queue.put_nowait(text)

    async def _write(self, conn: Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                await conn.ws.close()
                return
            await conn.ws.send_str(text)
            self.sent += 1

    # -- serving -----------------------------------------------------------------------
    async def serve(self, request: web.Request, conn_setup: Callable[[Conn], None],
                    on_text: Handler | None = None) -> web.WebSocketResponse:
        """One stream connection until it closes; pings are answered by hand (none while
        stalled), text requests go to ``on_text`` whose replies are queued in order."""
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = Conn(ws)
        conn_setup(conn)
        self.conns.append(conn)
        self._start_clock()
        writer = asyncio.create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    if not self.stalled():
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT and on_text is not None:
                    if self.stalled():
                        continue
                    try:
                        body = json.loads(msg.data)
                    except ValueError:
                        continue
                    for reply in await on_text(conn, body):
                        conn.queue.put_nowait(json.dumps(reply))
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.conns.remove(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return ws

    def _start_clock(self) -> None:
        if self._clock is None or self._clock.done():
            self._clock = asyncio.create_task(self._run_clock())

    async def _run_clock(self) -> None:
        while self.conns:
            self.tick()
            await asyncio.sleep(CLOCK_S)

    async def close(self) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._clock is not None:
            self._clock.cancel()

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.conns), "sent": self.sent,
                "injected": dict(self.injected)}


def ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Change:
    """What one order change adds: the last fill (quantity, price, fee) and whether the
    stream has not seen the order before."""

    new: bool
    qty: Decimal
    price: Decimal
    fee: Decimal
    trade_id: int


class FillDeltas:
    """Per order, what was last pushed: turns cumulative paper states into per-fill
    ``last executed`` fields as exchanges push them."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = {}
        self._trades = 0

    def change(self, channel: str, state: OrderState) -> Change:
        key = (channel, state.id)
        quote = (state.average or Decimal(0)) * state.filled
        before = self._last.get(key)
        filled0, quote0, fee0 = before or (Decimal(0), Decimal(0), Decimal(0))
        self._last[key] = (state.filled, quote, state.fee)
        qty = state.filled - filled0
        trade_id = 0
        if qty > 0:
            self._trades += 1
            trade_id = self._trades
        return Change(new=before is None, qty=qty,
                      price=((quote - quote0) / qty).quantize(Decimal("0.00000001"))
                      if qty > 0 else Decimal(0),
                      fee=state.fee - fee0, trade_id=trade_id)
