"""The client's bounded memory of orders: events per command, deduplicated by event id.

An order is *open* until its command's outcome event (terminal event of a PlaceOrder,
``cancel_done``/``cancel_rejected``/``cancel_all_done`` of a cancel); then it moves to a
small cache of finished orders (``keep_finished``, oldest dropped first), so ``submit``
and late readers still see it. Open orders are capped too (``max_open``): the client
may watch other strategies' orders whose outcome it never sees. Deduplication holds
for as long as an order is remembered.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas import Event
from schemas.events import OUTCOME_EVENTS


class OrderClientError(Exception):
    """Base of the client's errors; the message says what to check or fix."""


class NoWorkerError(OrderClientError, RuntimeError):
    """No worker declared or consumes the queue the command must go to."""


class TopologyMismatchError(OrderClientError):
    """The workers run another shard count than this client (see docs/operations.md)."""


class InvalidCommandError(OrderClientError, ValueError):
    """The command would be refused by the worker; nothing was published."""


class OutcomeTimeoutError(OrderClientError, TimeoutError):
    """No outcome (or no next event) for a command in time."""


@dataclass
class _Order:
    events: list[Event] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


Match = Callable[[Event], bool]


class OrderLog:
    def __init__(self, *, max_open: int = 100_000, keep_finished: int = 1_000) -> None:
        self.max_open = max_open
        self.keep_finished = keep_finished
        self._open: OrderedDict[str, _Order] = OrderedDict()
        self._done: OrderedDict[str, _Order] = OrderedDict()
        self._waiters: dict[str, list[tuple[Match, asyncio.Future[Event]]]] = {}
        self._streams: dict[str, list[asyncio.Queue[Event]]] = {}
        self.duplicates = 0
        self.evicted_open = 0

    def __len__(self) -> int:
        return len(self._open) + len(self._done)

    def history(self, command_id: str) -> list[Event]:
        order = self._open.get(command_id) or self._done.get(command_id)
        return list(order.events) if order else []

    def add(self, event: Event) -> bool:
        """Record one event; False for a duplicate. Wakes waiters and streams."""
        cid = event.command_id
        order = self._open.get(cid) or self._done.get(cid)
        if order is not None and event.event_id in order.ids:
            self.duplicates += 1
            return False
        if order is None:
            order = self._open[cid] = _Order()
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
                self.evicted_open += 1
        order.events.append(event)
        order.ids.add(event.event_id)
        if isinstance(event, OUTCOME_EVENTS) and cid in self._open:
            self._done[cid] = self._open.pop(cid)
            while len(self._done) > self.keep_finished:
                self._done.popitem(last=False)
        for stream in self._streams.get(cid, []):
            stream.put_nowait(event)
        waiting = self._waiters.get(cid)
        if waiting:
            for waiter in [w for w in waiting if w[0](event)]:
                waiting.remove(waiter)
                if not waiter[1].done():
                    waiter[1].set_result(event)
            if not waiting:
                del self._waiters[cid]
        return True

    async def wait(self, command_id: str, match: Match, timeout_s: float) -> Event:
        """The first event of ``command_id`` (seen or still to come) ``match`` accepts;
        TimeoutError after ``timeout_s``."""
        for event in self.history(command_id):
            if match(event):
                return event
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.setdefault(command_id, []).append(entry)
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            waiting = self._waiters.get(command_id)
            if waiting is not None and entry in waiting:
                waiting.remove(entry)
                if not waiting:
                    del self._waiters[command_id]

    def open_stream(self, command_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._streams.setdefault(command_id, []).append(queue)
        return queue

    def close_stream(self, command_id: str, queue: asyncio.Queue[Event]) -> None:
        streams = self._streams.get(command_id, [])
        if queue in streams:
            streams.remove(queue)
        if not streams:
            self._streams.pop(command_id, None)

    def pending(self) -> int:
        """Waiters and streams still registered (0 once every wait has returned)."""
        return sum(map(len, self._waiters.values())) + sum(map(len, self._streams.values()))
