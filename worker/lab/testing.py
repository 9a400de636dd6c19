"""In-memory fakes of the worker's ports, for unit tests and examples."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from schemas import Event
from schemas.tracking import TrackOrder
from worker.errors import UnknownExchange
from worker.exchange.models import OrderState
from worker.exchange.paper import PaperExchange
from worker.exchange.ports import Exchange


class FakePublisher:
    """Collects events and tracking records; ``fail_next`` makes the next publish raise
    (broker trouble)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.records: list[TrackOrder] = []
        self.facts: list[TrackOrder] = []
        self.deferred: list[tuple[bytes, int, dict[str, int]]] = []
        self.fail_next: Exception | None = None
        self.calls = 0

    async def publish(self, events: Sequence[Event], records: Sequence[TrackOrder] = (),
                      *, facts: Sequence[TrackOrder] = ()) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.calls += 1
        self.events.extend(events)
        self.records.extend(records)
        self.facts.extend(facts)

    async def recall(self, shard: int) -> Sequence[TrackOrder]:
        """The ``Memory`` port over what was published here (one broker, every shard)."""
        return list(self.facts)

    async def defer(self, body: bytes, shard: int, headers: dict[str, int],
                    message_id: str | None = None) -> None:
        self.deferred.append((body, shard, headers))

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class StaticExchanges:
    """Serves fixed exchange instances by name, for every account."""

    def __init__(self, exchanges: dict[str, Exchange] | None = None) -> None:
        self.exchanges: dict[str, Exchange] = exchanges or {"paper": PaperExchange()}

    async def get(self, account: str, exchange: str) -> Exchange:
        try:
            return self.exchanges[exchange]
        except KeyError:
            raise UnknownExchange(f"exchange {exchange!r} is not configured") from None

    def is_spot(self, exchange: str) -> bool:
        return True


class StreamingPaper(PaperExchange):
    """A PaperExchange with the ``OrderStream`` port: every order change is streamed.
    ``script`` (a list) replaces the stream: tests push states, ``[]`` (connected) or an
    exception (the stream broke) to play duplicates, gaps and disconnects by hand."""

    streams_orders = True

    def __init__(self, *args: Any, scripted: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scripted = scripted
        self._items: asyncio.Queue[OrderState | list[OrderState] | Exception] = (
            asyncio.Queue())
        self.listeners.append(self._changed_state)
        self.connected = False

    def _changed_state(self, state: OrderState) -> None:
        if not self.scripted and self.connected:
            self._items.put_nowait(state)

    def push(self, item: OrderState | list[OrderState] | Exception) -> None:
        self._items.put_nowait(item)

    async def watch_orders(self) -> list[OrderState]:
        if not self.connected and not self.scripted:
            self.connected = True
            return []
        item = await self._items.get()
        if isinstance(item, Exception):
            self.connected = False
            raise item
        return item if isinstance(item, list) else [item]

    async def stop_stream(self) -> None:
        self.connected = False
