"""Order updates over ccxt.pro's private streams: the ``OrderStream`` port of the ccxt
adapters (no ccxt import: the adapter supplies its client and error translation).

ccxt.pro's ``watch_orders`` resolves with a cache that later messages overwrite, and
a message that arrives while the caller is busy is only handed over with the *next*
message. So the adapter hooks the client's per-message order handler and queues every
parsed update in arrival order, while a keeper task holds the subscription with
``watch_orders`` and turns its failure (disconnect, missed pongs, auth) into an error
for the caller. Once the connection is up and subscribed the caller gets one empty
batch: from then on updates flow; before it some may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from worker.errors import ExchangeError, PermanentError
from worker.exchange.models import OrderState
from worker.settings import ExchangeConfig

log = logging.getLogger(__name__)
SUBSCRIBE_MARGIN_S = 0.2
"""After the connection is up and ccxt awaits order messages, time for a subscribe
request (Bybit) to reach the exchange before the stream counts as subscribed."""
_CONNECTED = "connected"


class CcxtStream:
    client: Any
    config: ExchangeConfig
    stream_supported = False
    """Subclasses that know their exchange's order messages set it."""

    def _translate(self, exc: BaseException) -> ExchangeError:
        raise NotImplementedError

    def parse_order(self, raw: dict[str, Any]) -> OrderState:
        raise NotImplementedError

    def stream_orders_of(self, message: Any) -> list[dict[str, Any]]:
        """The ccxt unified orders in one order message (per exchange)."""
        raise NotImplementedError

    def stream_state(self, raw: dict[str, Any]) -> OrderState | None:
        """One streamed order as the REST lookups would report it; None: not ours."""
        return self.parse_order(raw)

    @property
    def streams_orders(self) -> bool:
        return self.config.stream and self.stream_supported

    def hook_stream(self) -> None:
        """Install the message hook and the keepalive (call on a fresh ccxt.pro client)."""
        self._items: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        keep_alive_ms = max(100, int(self.config.stream_silence_s * 1000 / 3))
        self.client.streaming = {**self.client.streaming, "keepAlive": keep_alive_ms}
        original = self.client.handle_order

        def handle_order(ws_client: Any, message: Any) -> None:
            original(ws_client, message)
            if self._keeper is None or self._keeper.done():
                return  # nobody follows the stream now: the next start reconciles anyway
            try:
                rows = self.stream_orders_of(message)
            except Exception:
                log.exception("unreadable order message on %s", self.config.driver)
                rows = []
            for raw in rows:
                self._push(raw)

        self.client.handle_order = handle_order

    def _push(self, item: Any) -> None:
        self._items.append(item)
        self._wake.set()

    async def watch_orders(self) -> list[OrderState]:
        """The next order updates, in arrival order. ``[]`` once per (re)connection, when
        the stream is subscribed. Raises TransientError when the stream broke (call again
        to reconnect), PermanentError when it cannot work (auth, not supported)."""
        if not self.streams_orders:
            raise PermanentError(f"order stream is off for {self.config.driver}")
        if not self._items and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.create_task(self._keep_stream(), name="order-stream")
        while not self._items:
            self._wake.clear()
            await self._wake.wait()
        first = self._items[0]
        if first == _CONNECTED or isinstance(first, BaseException):
            self._items.popleft()
            if isinstance(first, BaseException):
                raise first
            return []
        out = []
        while self._items and isinstance(self._items[0], dict):
            raw = self._items.popleft()
            try:
                state = self.stream_state(raw)
            except Exception:
                log.exception("unreadable streamed order")
                continue
            if state is not None:
                out.append(state)
        return out

    def _subscribed(self) -> bool:
        """A live ws connection on which ccxt awaits order messages."""
        for c in (self.client.clients or {}).values():
            up = getattr(c, "connected", None)
            if up is None or not up.done() or up.cancelled() or up.exception() is not None:
                continue
            if not c.closed() and "orders" in c.futures:
                return True
        return False

    async def _keep_stream(self) -> None:
        watch: asyncio.Future[Any] | None = None
        connected = False
        give_up_at = time.monotonic() + max(5.0, 3 * self.config.stream_silence_s)
        try:
            while True:
                if watch is None or watch.done():
                    if watch is not None and watch.cancelled():
                        raise ConnectionResetError("order stream closed")
                    if watch is not None:
                        watch.result()  # raises the stream's failure
                    watch = asyncio.ensure_future(self.client.watch_orders())
                if not connected and time.monotonic() > give_up_at:
                    # e.g. an auth or subscribe request lost on a live connection
                    raise ConnectionResetError("order stream: not subscribed in time")
                if not connected and self._subscribed():
                    await asyncio.sleep(SUBSCRIBE_MARGIN_S)
                    connected = True
                    self._push(_CONNECTED)
                await asyncio.wait({watch}, timeout=None if connected else 0.02)
        except asyncio.CancelledError:
            if watch is not None:
                watch.cancel()
            raise
        except Exception as exc:
            if watch is not None:
                watch.cancel()
            await self._drop_connections()
            self._push(self._translate(exc))

    async def _drop_connections(self) -> None:
        """Close every ws connection: the next watch starts from a fresh one."""
        clients = self.client.clients or {}
        for url, ws_client in list(clients.items()):
            with contextlib.suppress(Exception):
                await ws_client.close()
            clients.pop(url, None)

    async def stop_stream(self) -> None:
        keeper, self._keeper = getattr(self, "_keeper", None), None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
        if hasattr(self, "_items"):
            self._items.clear()
