"""Strategy-side client: publish commands with confirms, await their events.

    async with OrderClient(amqp_url) as client:
        events = await client.submit(place_order, timeout_s=30)   # until terminal

Commands are routed to the shard queue of their account (same function as the
worker), persistent and confirmed; ``message_id`` is the command id.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError

from schemas import Event
from schemas.commands import Command, encode_command
from schemas.events import OUTCOME_EVENTS, TERMINAL_EVENTS, decode_event
from worker.broker.connect import connect_robust
from worker.broker.publisher import send_with_reconnect
from worker.broker.topology import Names, Topology, declare, shard_for


class NoWorkerError(RuntimeError):
    """The command could not be routed: no worker declared its shard queue."""


class OrderClient:
    def __init__(self, amqp_url: str, *, prefix: str = "orderworker", shards: int = 4,
                 delivery_limit: int = 5, watch: str = "order.#",
                 quorum_group_size: int | None = None) -> None:
        self.amqp_url = amqp_url
        self.names = Names(prefix, shards)
        self.delivery_limit = delivery_limit
        self.quorum_group_size = quorum_group_size
        self.watch = watch
        self.events: dict[str, list[Event]] = defaultdict(list)
        self.seen: set[str] = set()
        self.duplicates = 0
        self._waiters: dict[str, list[tuple[Callable[[Event], bool],
                                            asyncio.Future[Event]]]] = defaultdict(list)
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._topo: Topology | None = None
        self.listeners: list[asyncio.Queue[Event]] = []
        self.republish_s = 60.0

    async def __aenter__(self) -> Self:
        self._conn = await connect_robust(self.amqp_url, reconnect_interval=1.0)
        self._channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        self._topo = await declare(self._channel, self.names, self.delivery_limit,
                                  self.quorum_group_size, owner=False)
        if self.watch:
            queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(self._topo.events, self.watch)
            await queue.consume(self._on_event, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = decode_event(message.body)
        if event.event_id in self.seen:  # deterministic ids: dedupe redelivered states
            self.duplicates += 1
            return
        self.seen.add(event.event_id)
        self.events[event.command_id].append(event)
        for q in self.listeners:
            q.put_nowait(event)
        waiting = self._waiters.get(event.command_id, [])
        for waiter in [w for w in waiting if w[0](event)]:
            waiting.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(event)

    async def wait_for_workers(self, timeout_s: float = 30.0) -> None:
        """Return once a worker declared the whole topology: every shard queue, and the
        dead-letter watcher's queue, which a worker declares only after binding them."""
        assert self._conn is not None, "use 'async with OrderClient(...)'"
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        queues = [self.names.shard_queue(k) for k in range(self.names.shards)]
        for queue in [*queues, self.names.dead_watch_queue]:
            while True:
                channel = await self._conn.channel()
                try:
                    await channel.declare_queue(queue, passive=True)
                    break
                except aio_pika.exceptions.ChannelClosed:
                    if loop.time() > end:
                        raise NoWorkerError(f"no worker declared {queue}"
                                            f" within {timeout_s:.0f}s") from None
                    await asyncio.sleep(0.2)
                finally:
                    if not channel.is_closed:
                        await channel.close()

    async def send(self, command: Command) -> None:
        await self.publish_raw(encode_command(command), command.account,
                               message_id=command.command_id)

    async def publish_raw(self, body: bytes, account: str, message_id: str | None = None) -> None:
        """Publish bytes to the account's shard queue, awaiting the broker's confirm."""
        assert self._topo is not None, "use 'async with OrderClient(...)'"
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                   content_type="application/json", message_id=message_id)
        exchange, key = self._topo.commands, str(shard_for(account, self.names.shards))
        try:
            await send_with_reconnect("command", lambda: exchange.publish(
                message, key, mandatory=True, timeout=30), self.republish_s, exchange)
        except DeliveryError as exc:
            raise NoWorkerError(
                f"no queue for shard {key} of prefix {self.names.prefix!r}: no worker with "
                f"OW_PREFIX={self.names.prefix} and OW_SHARDS={self.names.shards} has "
                f"declared it (start one, or check prefix and shard count)") from exc

    async def _wait(self, command_id: str, match: Callable[[Event], bool],
                    timeout_s: float) -> Event:
        """The first event of ``command_id`` (seen or still to come) that ``match`` accepts."""
        for event in self.events.get(command_id, []):
            if match(event):
                return event
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters[command_id].append((match, fut))
        return await asyncio.wait_for(fut, timeout_s)

    async def wait_first(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The first event of a command (usually OrderAccepted)."""
        return await self._wait(command_id, lambda e: True, timeout_s)

    async def wait_terminal(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The event that ends the order placed by ``command_id``."""
        return await self._wait(command_id, lambda e: isinstance(e, TERMINAL_EVENTS), timeout_s)

    async def wait_outcome(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The outcome of any command: its order's terminal event for a PlaceOrder,
        ``cancel_done`` / ``cancel_rejected`` / ``cancel_all_done`` for cancels."""
        return await self._wait(command_id, lambda e: isinstance(e, OUTCOME_EVENTS), timeout_s)

    async def submit(self, command: Command, timeout_s: float = 60.0) -> list[Event]:
        """Send and wait for the command's outcome; returns its events so far."""
        await self.send(command)
        await self.wait_outcome(command.command_id, timeout_s)
        return list(self.events[command.command_id])
