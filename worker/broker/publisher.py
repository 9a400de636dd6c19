"""Confirmed, persistent, mandatory publishing of events and dead letters.

``publish`` returns only after the broker confirmed every message (quorum
queues confirm once a majority has it on disk). An unroutable or nacked
message raises, so the command is not acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractExchange

from schemas import Event
from schemas.events import encode_event, event_kind
from worker.broker.topology import event_routing_key
from worker.metrics import Metrics

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT


def event_message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        encode_event(event),
        delivery_mode=PERSISTENT,
        content_type="application/json",
        message_id=event.event_id,
        type=event_kind(event),
        headers={"command_id": event.command_id, "client_order_id": event.client_order_id},
    )


class RabbitPublisher:
    """EventPublisher on a publisher-confirms channel."""

    def __init__(self, events: AbstractExchange, dlx: AbstractExchange,
                 metrics: Metrics | None = None, confirm_timeout_s: float = 30.0) -> None:
        self._events = events
        self._dlx = dlx
        self._metrics = metrics
        self._timeout = confirm_timeout_s

    async def publish(self, events: Sequence[Event]) -> None:
        await asyncio.gather(*(
            self._events.publish(event_message(e),
                                 event_routing_key(e.account, e.symbol, event_kind(e)),
                                 mandatory=True, timeout=self._timeout)
            for e in events))
        if self._metrics is not None:
            for e in events:
                self._metrics.events.labels(event_kind(e)).inc()

    async def dead_letter(self, body: bytes, reason: str, headers: dict[str, str]) -> None:
        message = aio_pika.Message(body, delivery_mode=PERSISTENT,
                                   headers={**headers, "x-orderworker-reason": reason[:1000]})
        await self._dlx.publish(message, "", mandatory=True, timeout=self._timeout)
