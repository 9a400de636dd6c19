"""Confirmed, persistent, mandatory publishing of events, tracking records and dead letters.

``publish`` returns only after the broker confirmed every message (quorum
queues confirm once a majority has it on disk). An unroutable (returned)
message raises, so the command is not acked. A lost connection or channel
is waited out (robust reconnect) and the batch is published again, for at
most ``republish_s``; so is a broker nack (a quorum queue between leaders
after a cluster node died nacks). Events are idempotent by event_id, so a
re-send that duplicates one is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika import exceptions as amqp_errors
from aio_pika.abc import AbstractExchange
from aiormq import spec

from schemas import Event
from schemas.events import encode_event, event_kind
from schemas.tracking import TrackBatch, TrackOrder, batches, encode_record
from worker.broker.connect import needs_renewal, renew_channel, underlay_of
from worker.broker.memo import memo_message
from worker.broker.topology import Names, event_routing_key, shard_for
from worker.metrics import Metrics

PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
RECONNECTABLE = (amqp_errors.AMQPConnectionError, amqp_errors.AMQPChannelError,
                 amqp_errors.ChannelInvalidStateError, ConnectionError, TimeoutError)
log = logging.getLogger(__name__)


def event_message(event: Event) -> aio_pika.Message:
    return aio_pika.Message(
        encode_event(event),
        delivery_mode=PERSISTENT,
        content_type="application/json",
        message_id=event.event_id,
        type=event_kind(event),
        headers={"command_id": event.command_id, "client_order_id": event.client_order_id},
    )


def event_properties(event: Event) -> spec.Basic.Properties:
    """``event_message(event)``'s AMQP properties, built directly (see ``publish_bytes``)."""
    return spec.Basic.Properties(
        delivery_mode=2, content_type="application/json", message_id=event.event_id,
        message_type=event_kind(event),
        headers={"command_id": event.command_id, "client_order_id": event.client_order_id})


async def publish_bytes(exchange: AbstractExchange, body: bytes, routing_key: str,
                        properties: spec.Basic.Properties, confirm_s: float) -> object:
    """``exchange.publish(aio_pika.Message(body, ...), routing_key, mandatory=True)``
    without the aio_pika Message: building one and its properties costs ~50 us, and every
    order publishes two events (a returned message still raises: the channels publish
    with ``on_return_raises``)."""
    if not isinstance(exchange, aio_pika.Exchange):  # another implementation (tests)
        return await exchange.publish(aio_pika.Message(
            body, delivery_mode=properties.delivery_mode, content_type=properties.content_type,
            message_id=properties.message_id, type=properties.message_type,
            headers=properties.headers), routing_key, mandatory=True, timeout=confirm_s)
    if exchange.channel.is_closed:
        raise amqp_errors.ChannelInvalidStateError(f"{exchange.channel!r} closed")
    channel = await exchange.channel.get_underlay_channel()
    return await channel.basic_publish(body, exchange=exchange.name, routing_key=routing_key,
                                       properties=properties, mandatory=True, timeout=confirm_s)


async def send_with_reconnect(what: str, send: Callable[[], Awaitable[object]],
                              limit_s: float, via: AbstractExchange | None = None) -> None:
    """Call ``send`` until it succeeds, riding out a robust reconnect or a broker nack
    (after which the channel of exchange ``via`` is renewed) for ``limit_s``."""
    deadline = time.monotonic() + limit_s
    attempt = 0
    while True:
        channel = await underlay_of(via) if via is not None else None
        try:
            await send()
            return
        except (*RECONNECTABLE, amqp_errors.DeliveryError) as exc:
            attempt += 1
            if isinstance(exc, amqp_errors.PublishError) or time.monotonic() > deadline:
                raise  # PublishError: returned as unroutable, re-sending cannot help
            if via is not None and needs_renewal(via, exc):
                await renew_channel(via, channel)
            log.warning("publishing %s failed (%r); re-sending after reconnect", what, exc)
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))


def record_message(record: TrackOrder | TrackBatch) -> aio_pika.Message:
    kind = "track_batch" if isinstance(record, TrackBatch) else "track_order"
    return aio_pika.Message(encode_record(record), delivery_mode=PERSISTENT,
                            content_type="application/json", type=kind)


def by_shard(records: Sequence[TrackOrder], shards: int) -> dict[int, list[TrackOrder]]:
    grouped: dict[int, list[TrackOrder]] = {}
    for r in records:
        grouped.setdefault(shard_for(r.account, shards), []).append(r)
    return grouped


class RabbitPublisher:
    """EventPublisher on a publisher-confirms channel. Records go straight into their
    shard's wait queue (default exchange), from where they come round a cycle later."""

    def __init__(self, events: AbstractExchange, dlx: AbstractExchange,
                 metrics: Metrics | None = None, confirm_timeout_s: float = 30.0,
                 republish_s: float = 60.0, *, tracks: AbstractExchange | None = None,
                 names: Names | None = None) -> None:
        self._events = events
        self._dlx = dlx
        self._tracks = tracks
        self._names = names
        self._metrics = metrics
        self._timeout = confirm_timeout_s
        self._republish_s = republish_s

    async def _with_reconnect(self, what: str, send: Callable[[], Awaitable[object]]) -> None:
        await send_with_reconnect(what, send, self._republish_s, self._events)

    def _tracking(self) -> tuple[Names, AbstractExchange]:
        if self._names is None or self._tracks is None:
            raise RuntimeError("this publisher has no tracking queues")
        return self._names, self._tracks

    async def publish(self, events: Sequence[Event], records: Sequence[TrackOrder] = (),
                      *, facts: Sequence[TrackOrder] = ()) -> None:
        names, tracks = self._tracking() if records or facts else (self._names, self._tracks)

        async def send() -> None:
            sends = [publish_bytes(self._events, encode_event(e),
                                   event_routing_key(e.account, e.symbol, event_kind(e)),
                                   event_properties(e), self._timeout)
                     for e in events]
            if records:
                assert names is not None and tracks is not None
                sends += [tracks.publish(record_message(batch), names.track_queue(shard),
                                         mandatory=True, timeout=self._timeout)
                          for shard, group in by_shard(records, names.shards).items()
                          for batch in batches(group)]
            if facts:  # worker.broker.memo
                assert names is not None and tracks is not None
                sends += [tracks.publish(memo_message(f), names.memo_queue(
                    shard_for(f.account, names.shards)), mandatory=True, timeout=self._timeout)
                    for f in facts]
            await asyncio.gather(*sends)

        if not events and not records and not facts:
            return
        await self._with_reconnect("events", send)
        if self._metrics is not None:
            for e in events:
                self._metrics.on_event(event_kind(e), getattr(e, "reason", None))

    async def defer(self, body: bytes, shard: int, headers: dict[str, int],
                    message_id: str | None = None) -> None:
        """Send a command round ``shard``'s carousel: its wait queue holds it for a cycle,
        then it joins the shard queue behind every tracking record on its way now."""
        names, tracks = self._tracking()
        message = aio_pika.Message(body, delivery_mode=PERSISTENT, headers=dict(headers),
                                   content_type="application/json", message_id=message_id)
        await self._with_reconnect("deferred command", lambda: tracks.publish(
            message, names.track_queue(shard), mandatory=True, timeout=self._timeout))

    async def dead_letter(self, body: bytes, reason: str, headers: dict[str, str]) -> None:
        message = aio_pika.Message(body, delivery_mode=PERSISTENT,
                                   headers={**headers, "x-orderworker-reason": reason[:1000]})
        await self._with_reconnect("dead letter", lambda: self._dlx.publish(
            message, "", mandatory=True, timeout=self._timeout))
        if self._metrics is not None:
            self._metrics.on_dead_letter(reason)
