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
facts. A marker left behind by a reader that died expires (60 s) and is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import aio_pika
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.channel import Channel as RawChannel

from schemas.tracking import TrackBatch, TrackOrder, decode_record, encode_record
from worker.broker.topology import Names
from worker.errors import TransientError

MARKER = "memo_marker"
MEMO_HEADER = "x-ow-memo"
MARKER_TTL_MS = "60000"
MAX_FACTS = 60_000
"""Prefetch is at most 65,535: a reader could not reach its marker behind more."""


def memo_message(rec: TrackOrder, now: float | None = None) -> aio_pika.Message:
    """A fact for the memo queue: it expires with the fact (``expires_at``)."""
    now = time.time() if now is None else now
    ttl_s = max(1.0, (rec.expires_at or now + 3600.0) - now)
    return aio_pika.Message(encode_record(rec), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json", type="track_order",
                            headers={MEMO_HEADER: 1}, expiration=ttl_s)


class MemoUnreadable(TransientError):
    """The memo queue could not be read whole: decide nothing yet."""


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
            raise MemoUnreadable("no broker connection")
        try:
            raw: RawChannel = await transport.connection.channel()
        except Exception as exc:  # the connection is going away: decide nothing now
            raise MemoUnreadable(f"cannot open a channel: {exc!r}") from exc
        try:
            return await asyncio.wait_for(self._read(raw, self._names.memo_queue(shard)),
                                          self._timeout_s)
        except TimeoutError as exc:
            raise MemoUnreadable(f"memo queue of shard {shard} not read in "
                                 f"{self._timeout_s:g}s") from exc
        except MemoUnreadable:
            raise
        except Exception as exc:
            raise MemoUnreadable(f"memo queue of shard {shard}: {exc!r}") from exc
        finally:
            if not raw.is_closed:
                with contextlib.suppress(Exception):  # closing, the broker returns them
                    await raw.close()  # every fact goes back to the queue

    @staticmethod
    async def _read(raw: RawChannel, queue: str) -> list[TrackOrder]:
        declared = await raw.queue_declare(queue, passive=True)
        count = declared.message_count or 0
        if count > MAX_FACTS:
            raise MemoUnreadable(f"{queue} holds {count} messages (at most {MAX_FACTS})")
        await raw.basic_qos(prefetch_count=min(65_535, count + 1_000))
        marker = uuid.uuid4().hex
        facts: list[TrackOrder] = []
        seen = asyncio.get_running_loop().create_future()

        async def on_message(message: DeliveredMessage) -> None:
            props = message.header.properties
            if props.message_type == MARKER:
                delivery = message.delivery
                if props.message_id == marker and not seen.done() \
                        and isinstance(delivery, spec.Basic.Deliver):
                    seen.set_result(delivery.delivery_tag)
                return
            record = decode_record(message.body)
            facts.extend(record.records if isinstance(record, TrackBatch) else (record,))

        await raw.basic_consume(queue, on_message, no_ack=False)
        await raw.basic_publish(b"", exchange="", routing_key=queue,
                                properties=spec.Basic.Properties(
                                    message_id=marker, message_type=MARKER,
                                    expiration=MARKER_TTL_MS, delivery_mode=1))
        tag = await seen
        await raw.basic_ack(tag)
        return facts
