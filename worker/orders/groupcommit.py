"""Group commit for tracking-record renewals.

Records come round one message at a time (up to the prefetch in flight). Renewing
each with its own confirmed publish would cost one publish per order per cycle, so
renewals that arrive while a publish is in flight wait for the next one, which
carries them all (the publisher packs one shard's records into batch messages).
A caller returns only once its own entries are confirmed, so the message that
brought them may be acked then; if the publish fails, every caller waiting on it
gets the error and leaves its message for redelivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from worker.orders.registry import Entry

Persist = Callable[[Iterable[Entry]], Awaitable[None]]


class GroupCommit:
    def __init__(self, persist: Persist) -> None:
        self._persist = persist
        self._queued: dict[str, Entry] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._running: asyncio.Task[None] | None = None

    async def renew(self, entries: Iterable[Entry]) -> None:
        """Returns once a confirmed publish carried every one of ``entries``."""
        for e in entries:
            self._queued[e.ref.client_order_id] = e
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._waiters.append(done)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        waiters: list[asyncio.Future[None]] = []
        try:
            await asyncio.sleep(0)  # let the rest of this network read queue up behind us
            while self._waiters:
                entries, waiters = list(self._queued.values()), self._waiters
                self._queued, self._waiters = {}, []
                try:
                    await self._persist(entries)
                except Exception as exc:
                    _settle(waiters, exc)
                    continue
                _settle(waiters, None)
        finally:  # cancelled (shutdown): nobody may wait for a publish that will not come
            gone = RuntimeError("tracking-record renewal stopped")
            _settle(waiters + self._waiters, gone)
            self._waiters, self._queued = [], {}


def _settle(waiters: list[asyncio.Future[None]], exc: Exception | None) -> None:
    for w in waiters:
        if not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)


def _retrieve(fut: asyncio.Future[None]) -> None:
    """A caller cancelled meanwhile does not read its error; read it so none is logged."""
    if not fut.cancelled():
        fut.exception()
