"""Ports the handlers depend on (the exchange ports live in worker.exchange.ports).

Handlers know no broker types: they get a ``Deps`` and a ``Delivery`` and
return an ``Outcome``; the consumer turns that into ack / nack / dead-letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from schemas import Event
from schemas.tracking import TrackOrder
from worker.crashpoints import NO_CRASH, CrashPoints
from worker.exchange.ports import Exchange
from worker.metrics import Metrics
from worker.orders.lookup import SeenCommands
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.orders.tracker import Tracker


class EventPublisher(Protocol):
    """Publishes events (and tracking records) durably; returns only once the broker
    confirmed every one of them. ``facts`` (tombstones and remembered outcomes, also
    among ``records``) go to their shard's memo queue as well (``Memory``)."""

    async def publish(self, events: Sequence[Event], records: Sequence[TrackOrder] = (),
                      *, facts: Sequence[TrackOrder] = ()) -> None: ...


class Memory(Protocol):
    """A shard's facts straight from the broker (worker.broker.memo): every tombstone and
    remembered outcome confirmed before the call, whatever the carousel still holds back.
    A worker that just took a shard over reads them before it decides a command."""

    async def recall(self, shard: int) -> Sequence[TrackOrder]: ...


class NoMemory:
    """No broker (tests, the in-process tools): every fact is in this process."""

    async def recall(self, shard: int) -> Sequence[TrackOrder]:
        return ()


class ExchangeProvider(Protocol):
    """The live client for (account, exchange); raises UnknownExchange."""

    async def get(self, account: str, exchange: str) -> Exchange: ...

    def is_spot(self, exchange: str) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """What to do with the command message once the handler is done.

    ack:         done; its events are confirmed by the broker.
    retry:       transient trouble; requeue (bounded by the queue's delivery-limit).
    dead_letter: poison or given up; park it in the dead-letter queue with ``reason``.
    defer:       decide later: a copy goes round the shard's carousel (confirmed, then
                 ack) and comes back behind every tracking record on its way now.
    """

    action: Literal["ack", "retry", "dead_letter", "defer"]
    reason: str = ""


ACK = Outcome("ack")
RETRY = Outcome("retry")
DEFER = Outcome("defer")


class Fence(Protocol):
    """Proof that this worker still holds a delivery (worker.broker.fence)."""

    async def proven_at(self, max_age_s: float) -> float:
        """Monotonic time, at most ``max_age_s`` old, before which the broker cannot have
        given this delivery to anyone else (a round trip started then and succeeded);
        raises TransientError when that cannot be shown (channel gone)."""
        ...


class _Unfenced:
    """No broker (tests, tools): nobody else can hold the delivery."""

    async def proven_at(self, max_age_s: float) -> float:
        return time.monotonic()


class _NoTurn:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class Delivery:
    """Broker facts a handler may act on, without broker types."""

    attempt: int = 1
    final_attempt: bool = False
    redelivered: bool = False
    published_attempt: int = 1
    """The publisher's own attempt (``REPUBLISH_HEADER``): >1 when the client sent the
    command again after an unconfirmed publish (see worker.orders.lookup)."""
    deferrals: int = 0
    """How often this command was deferred (it came back round the carousel)."""
    shard: int = 0
    received_at: float = field(default_factory=lambda: time.monotonic())
    """When this delivery arrived (monotonic); bounds when a previous one last acted."""
    turn: AbstractAsyncContextManager[None] = field(default_factory=_NoTurn)
    """Held while an order is submitted: serialises commands of one account."""
    fence: Fence = field(default_factory=_Unfenced)
    """Proves the worker still holds this delivery before a create is sent."""

    @property
    def redelivery(self) -> bool:
        """An earlier holder of this message may have acted on it."""
        return self.redelivered or self.attempt > 1

    @property
    def copy(self) -> bool:
        """A redelivery, or a command its client sent again: it may be decided already."""
        return self.redelivery or self.published_attempt > 1


@dataclass(frozen=True)
class Deps:
    settings: Settings
    exchanges: ExchangeProvider
    publisher: EventPublisher
    metrics: Metrics
    tracker: Tracker
    crash: CrashPoints = NO_CRASH
    seen: SeenCommands = field(default_factory=SeenCommands.from_now)
    """Client ids this process started to place (worker.orders.lookup)."""
