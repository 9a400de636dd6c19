"""The memo queues: a shard's facts, readable at once by a worker that takes it over.

A fact is a tombstone (a cancel found no order: its PlaceOrder must never be placed) or a
remembered outcome (worker.orders.outcomes). Each circulates as a tracking record, and
so reaches a new shard owner only when the carousel brings it round: a cycle later, and
behind the shard queue's command backlog. A command decided before that (a copy of a
refused PlaceOrder, a PlaceOrder whose cancel ran on the previous owner) could be judged
afresh: placed against a published "it will not be placed later", or given a second
outcome. So every fact is also published, confirmed, to ``<p>.memo.<k>`` (quorum, single
active consumer, per-message TTL ``keep_s``), and a worker reads that queue whole
(``recall``) before it decides a command of a shard it took over (worker.orders.tracker).

Reading without taking. The reader consumes the queue, publishes a marker of its own,
and collects every message until the marker comes: facts confirmed before the read are
ahead of the marker (the queue is FIFO, and the messages another reader held return
ahead of it too, in their order). It acks only the marker and closes the channel, so
every fact goes back to the queue. Single active consumer makes the readers take turns
(one reader's messages reach the next once it closed). The channel is a plain AMQP
channel, not a robust one: a reconnect must never bring back a reader that holds the
facts. A marker left behind by a reader that died is removed by a later reader. Every
wait is bounded (``timeout_s``); a read that fails raises ``FactsUnreadable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime

import aio_pika
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.channel import Channel as RawChannel

from schemas.tracking import TrackBatch, TrackOrder, decode_record, encode_record
from worker.broker.topology import Names
from worker.errors import FactsUnreadable

log = logging.getLogger(__name__)
MARKER = "memo_marker"
MEMO_HEADER = "x-ow-memo"
MARKER_TTL_MS = "60000"
STALE_MARKER_S = 120.0
"""A marker this old belongs to a reader that died: the next reader removes it (per-message
TTL only drops messages at the head, where facts kept for minutes may stand before it)."""
MAX_FACTS = 60_000
"""Prefetch is at most 65,535: a reader could not reach its marker behind more."""


def memo_message(rec: TrackOrder, now: float | None = None) -> aio_pika.Message:
    """A fact for the memo queue: it expires with the fact (``expires_at``)."""
    now = time.time() if now is None else now
    ttl_s = max(1.0, (rec.expires_at or now + 3600.0) - now)
    return aio_pika.Message(encode_record(rec), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json", type="track_order",
                            headers={MEMO_HEADER: 1}, expiration=ttl_s)


class RabbitMemory:
    """The ``Memory`` port on the worker's broker connection."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, names: Names,
                 timeout_s: float = 10.0) -> None:
        self._connection = connection
        self._names = names
        self._timeout_s = timeout_s

    async def recall(self, shard: int) -> list[TrackOrder]:
        transport = getattr(self._connection, "transport", None)
        if transport is None:
            raise FactsUnreadable("no broker connection")
        queue = self._names.memo_queue(shard)
        raw: RawChannel | None = None
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await transport.connection.channel()
                return await self._read(raw, queue)
        except TimeoutError as exc:
            raise FactsUnreadable(f"{queue} not read in {self._timeout_s:g}s") from exc
        except FactsUnreadable:
            raise
        except Exception as exc:  # the connection or channel went: nothing was decided
            raise FactsUnreadable(f"{queue}: {exc!r}") from exc
        finally:
            if raw is not None and not raw.is_closed:
                with contextlib.suppress(Exception):  # closing, the broker returns them
                    await asyncio.wait_for(raw.close(), 5.0)

    @staticmethod
    async def _read(raw: RawChannel, queue: str) -> list[TrackOrder]:
        declared = await raw.queue_declare(queue, passive=True)
        # a guard only: quorum queues leave out what a reader holds or returned lately
        count = declared.message_count or 0
        if count > MAX_FACTS:
            raise FactsUnreadable(f"{queue} holds {count} messages (at most {MAX_FACTS})")
        await raw.basic_qos(prefetch_count=65_535)  # a peer's facts may come back too
        marker = uuid.uuid4().hex
        facts: list[TrackOrder] = []
        stray: list[int] = []
        seen = asyncio.get_running_loop().create_future()

        async def on_message(message: DeliveredMessage) -> None:
            props, delivery = message.header.properties, message.delivery
            if not isinstance(delivery, spec.Basic.Deliver) or delivery.delivery_tag is None:
                return
            if props.message_type == MARKER:
                if props.message_id == marker and not seen.done():
                    seen.set_result(delivery.delivery_tag)
                elif _stale(props.timestamp):  # its reader gave up long ago
                    stray.append(delivery.delivery_tag)
                return
            try:
                record = decode_record(message.body)
            except Exception as exc:  # not ours to judge: it stays, and says so
                log.error("unreadable message in %s skipped: %r", queue, exc)
                return
            facts.extend(record.records if isinstance(record, TrackBatch) else (record,))

        await raw.basic_consume(queue, on_message, no_ack=False)
        await raw.basic_publish(b"", exchange="", routing_key=queue,
                                properties=spec.Basic.Properties(
                                    message_id=marker, message_type=MARKER, delivery_mode=1,
                                    expiration=MARKER_TTL_MS,
                                    timestamp=datetime.now(UTC)))
        tag = await seen
        for stale in stray:
            await raw.basic_ack(stale)
        await raw.basic_ack(tag)
        return facts


def _stale(stamp: object) -> bool:
    if not isinstance(stamp, datetime):
        return False
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (datetime.now(UTC) - stamp).total_seconds() > STALE_MARKER_S
