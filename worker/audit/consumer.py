"""Consume the durable event queue into an AuditStore, in batches.

Ack decisions: a message is acked only after the batch holding it is committed
(redelivery after a crash is a no-op insert: event_id is the primary key).
An event that cannot be decoded is rejected to the dead-letter exchange with a
log line. A store failure nacks the batch for redelivery. ``metrics`` counts
received, stored, undecodable events and store failures, and the lag of the
last committed batch; ``orderworker audit run`` serves them with health checks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import aio_pika
import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from schemas import Event
from schemas.events import decode_event
from worker.audit.store import AuditStore
from worker.broker.connect import connect_robust
from worker.broker.topology import Names, declare
from worker.metrics import AuditMetrics

log = logging.getLogger(__name__)


class AuditConsumer:
    def __init__(self, amqp_url: str, store: AuditStore, *, prefix: str = "orderworker",
                 shards: int = 4, delivery_limit: int = 5, batch: int = 200,
                 flush_s: float = 0.05, metrics: AuditMetrics | None = None,
                 quorum_group_size: int | None = None) -> None:
        self.amqp_url, self.store = amqp_url, store
        self.names = Names(prefix, shards)
        self.delivery_limit = delivery_limit
        self.metrics = metrics or AuditMetrics()
        self.consuming = False
        self.batch, self.flush_s = batch, flush_s
        self.quorum_group_size = quorum_group_size
        self.pending: list[tuple[AbstractIncomingMessage, Event]] = []
        self.stored = 0
        self.received = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._conn: AbstractRobustConnection | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._conn = await connect_robust(self.amqp_url, reconnect_interval=1.0)
        channel = await self._conn.channel()
        if not await self._audit_queue_exists():  # else never redeclared with our arguments
            await declare(channel, self.names, 5, self.quorum_group_size, owner=False)
        await channel.set_qos(prefetch_count=self.batch * 2)
        queue = await channel.declare_queue(self.names.audit_queue, passive=True)
        await queue.consume(self._on_message)
        self.consuming = True

    async def _audit_queue_exists(self) -> bool:
        assert self._conn is not None
        channel = await self._conn.channel()
        try:
            await channel.declare_queue(self.names.audit_queue, passive=True)
            return True
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()

    @property
    def connection(self) -> AbstractRobustConnection | None:
        return self._conn

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.received += 1
        self.metrics.received.inc()
        try:
            event = decode_event(message.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.metrics.undecodable.inc()
            log.error("undecodable event dead-lettered: %s", exc,
                      extra={"message_id": message.message_id})
            await message.reject(requeue=False)
            return
        self.pending.append((message, event))
        if len(self.pending) >= self.batch:
            await self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.flush_s, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.create_task(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        async with self._lock:
            batch, self.pending = self.pending, []
            if not batch:
                return
            try:
                new = await self.store.append([e for _, e in batch])
            except Exception:
                self.metrics.store_failures.inc()
                log.exception("audit store failed; batch left for redelivery")
                for message, _ in batch:
                    await _quietly(message.nack(requeue=True))
                return
            self.stored += new
            self.metrics.stored.inc(new)
            oldest = min(e.occurred_at for _, e in batch)
            self.metrics.lag.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
            self.metrics.last_commit.set(time.time())
            for message, _ in batch:
                await _quietly(message.ack())

    async def stop(self) -> None:
        self.consuming = False
        await self.flush()
        if self._conn is not None:
            await self._conn.close()
        await self.store.close()


async def _quietly(op: object) -> None:
    try:
        await op  # type: ignore[misc]
    except Exception as exc:  # channel gone: the broker redelivers, the insert is a no-op
        log.warning("could not settle audit message: %r", exc)
