"""In-memory fakes of the worker's ports, for unit tests and examples."""

from __future__ import annotations

from collections.abc import Sequence

from schemas import Event
from schemas.tracking import TrackOrder
from worker.errors import UnknownExchange
from worker.exchange.paper import PaperExchange
from worker.exchange.ports import Exchange


class FakePublisher:
    """Collects events and tracking records; ``fail_next`` makes the next publish raise
    (broker trouble)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.records: list[TrackOrder] = []
        self.fail_next: Exception | None = None
        self.calls = 0

    async def publish(self, events: Sequence[Event],
                      records: Sequence[TrackOrder] = ()) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.calls += 1
        self.events.extend(events)
        self.records.extend(records)

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
