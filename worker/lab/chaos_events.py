"""Chaos-run observers: the durable event stream, deduplicated, and the dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from schemas import CancelRejected, OrderFailed, OrderRejected, RejectReason
from schemas.events import OUTCOME_EVENTS, decode_event, event_kind
from worker.broker.connect import broker_urls
from worker.broker.topology import Names

log = logging.getLogger(__name__)
RECONNECT_S = 1.0


class EventLog:
    """Consumes ``<prefix>.events.audit`` with manual acks; counts redelivered duplicates.

    It reconnects by itself (every address of ``amqp_url`` in turn) whenever its
    connection or channel closes, rather than relying on aio-pika's robust restore: with
    several robust connections in one process (here the client's and this one) aio-pika
    10.2.1 restored the consumers of only one after a broker restart. A chaos run then
    counted not one event, and every order looked lost, although all 6499 events sat in
    the audit queue."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.amqp_url, self.names = amqp_url, Names(prefix, 8)
        self.seen: set[str] = set()
        self.duplicates = 0
        self.reconnects = 0
        self.kinds: dict[str, set[str]] = {}
        self.outcomes: dict[str, int] = {}
        self._terminal: set[str] = set()
        self.first_at: dict[str, float] = {}
        """Per command: when a worker made its first event (``occurred_at``, epoch s)."""
        self.done_at: dict[str, float] = {}
        """Per command: when a worker made its outcome event (``occurred_at``, epoch s)."""
        self.cancel_not_found: dict[str, bool] = {}
        self.second_outcomes: list[str] = []
        """A command's outcome event with a new id after its first: two outcomes."""
        self._conn: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._consuming = asyncio.Event()

    async def start(self) -> None:
        """Returns once the first consumer is set up (the audit queue must exist)."""
        self._task = asyncio.create_task(self._run(), name="chaos-event-log")
        waiter = asyncio.create_task(self._consuming.wait())
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done():
            self._task.result()  # the loop ended before consuming: raise its error

    async def _run(self) -> None:
        urls, i = broker_urls(self.amqp_url), 0
        while True:
            try:
                conn = await aio_pika.connect(urls[i % len(urls)], timeout=10)
            except Exception as exc:
                i += 1
                log.debug("event log: connect failed (%r), retrying", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            self._conn = conn
            try:
                channel = await conn.channel()
                await channel.set_qos(prefetch_count=500)
                queue = await channel.declare_queue(self.names.audit_queue, passive=True)
                await queue.consume(self._on_event)
                if self._consuming.is_set():
                    self.reconnects += 1
                self._consuming.set()
                await asyncio.wait([asyncio.ensure_future(conn.closed()),
                                    asyncio.ensure_future(channel.closed())],
                                   return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._consuming.is_set() and isinstance(
                        exc, aio_pika.exceptions.ChannelNotFoundEntity):
                    raise  # no audit queue at all: the workers never declared it
                log.debug("event log: consumer lost (%r), reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()
            i += 1
            await asyncio.sleep(RECONNECT_S)

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = decode_event(message.body)
        if event.event_id in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(event.event_id)
            self.kinds.setdefault(event.command_id, set()).add(event_kind(event))
            at = event.occurred_at.timestamp()
            self.first_at[event.command_id] = min(at, self.first_at.get(event.command_id, at))
            if isinstance(event, CancelRejected):
                self.cancel_not_found[event.command_id] = (
                    event.reason == RejectReason.ORDER_NOT_FOUND)
            if isinstance(event, OUTCOME_EVENTS):
                if event.command_id in self._terminal:
                    self.second_outcomes.append(f"{event.command_id}: {event_kind(event)}")
                self._terminal.add(event.command_id)
                self.done_at.setdefault(event.command_id, at)
                label = event_kind(event)
                if isinstance(event, OrderRejected | OrderFailed | CancelRejected):
                    label += f":{event.reason.value}"
                self.outcomes[label] = self.outcomes.get(label, 0) + 1
        await message.ack()

    async def unread(self, wait_s: float = 30.0) -> int:
        """Events still in the audit queue after waiting up to ``wait_s`` for them to be
        consumed (0 when the counts are complete), -1 if the queue cannot be read."""
        loop = asyncio.get_running_loop()
        end, left = loop.time() + wait_s, -1
        urls, i = broker_urls(self.amqp_url), 0
        while True:
            try:
                conn = await aio_pika.connect(urls[i % len(urls)], timeout=10)
                async with conn:
                    channel = await conn.channel()
                    queue = await channel.declare_queue(self.names.audit_queue, passive=True)
                    left = queue.declaration_result.message_count or 0
            except Exception:
                i += 1  # that node may be down: ask the next one
            if left == 0 or loop.time() > end:
                return left
            await asyncio.sleep(1.0)

    def terminal_commands(self) -> set[str]:
        return self._terminal

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
