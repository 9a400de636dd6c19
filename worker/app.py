"""Worker lifecycle: connect, declare, consume, drain on stop.

Start: robust connection, a publisher-confirms channel for events and dead
letters, a consumer channel with bounded prefetch. The worker subscribes
first to its *preferred* shards (shard % worker_count == worker_index), then,
after ``standby_delay_s``, to all others as standby: single-active-consumer
hands a standby queue over only when its active worker goes away.

Stop: cancel the consumers, let in-flight commands finish (up to
``shutdown_grace_s``), nack whatever is still unfinished for redelivery, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from worker.broker.connect import connect_robust
from worker.broker.consumer import CommandConsumer
from worker.broker.publisher import RabbitPublisher
from worker.broker.topology import Names, declare
from worker.crashpoints import CrashPoints
from worker.exchange.factory import ExchangeFactory
from worker.metrics import Metrics
from worker.orders.reconcile import reconcile_open_orders
from worker.ports import Deps, ExchangeProvider
from worker.settings import Settings

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: Settings, *, exchanges: ExchangeProvider | None = None,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.names = Names(settings.prefix, settings.shards)
        self.metrics = metrics or Metrics()
        self.exchanges = exchanges or ExchangeFactory(settings)
        self.connection: AbstractRobustConnection | None = None
        self.consumer: CommandConsumer | None = None
        self._subscriptions: list[tuple[AbstractQueue, str]] = []
        self._standby_task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._orphans: list[asyncio.Task[None]] = []
        self.ready = False

    def preferred_shards(self) -> list[int]:
        s = self.settings
        count = max(1, s.worker_count)
        return [k for k in range(s.shards) if k % count == s.worker_index % count]

    async def start(self) -> None:
        s = self.settings
        self.connection = await connect_robust(
            s.amqp_url, reconnect_interval=1.0,
            client_properties={"connection_name": f"orderworker-{s.worker_index}"})
        pub = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        topo = await declare(pub, self.names, s.delivery_limit, s.quorum_group_size)
        publisher = RabbitPublisher(topo.events, topo.dlx, self.metrics)
        deps = Deps(settings=s, exchanges=self.exchanges, publisher=publisher,
                    metrics=self.metrics, crash=CrashPoints(s.crash_points))
        self.consumer = CommandConsumer(deps, publisher)
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=s.prefetch)
        # declare_queue (passive), not get_queue: only queues declared through a robust
        # channel get their consumers restored after a reconnect
        queues: list[AbstractQueue] = [
            await channel.declare_queue(self.names.shard_queue(k), passive=True)
            for k in range(s.shards)]
        preferred = set(self.preferred_shards())
        await self._subscribe([q for k, q in enumerate(queues) if k in preferred])
        others = [q for k, q in enumerate(queues) if k not in preferred]
        if others:
            self._standby_task = asyncio.create_task(self._subscribe_later(others))
        if s.reconcile_targets:
            self._reconcile_task = asyncio.create_task(self._reconcile_later(deps, preferred))
        self.ready = True
        log.info("worker started", extra={"preferred_shards": sorted(preferred),
                                          "shards": s.shards})

    async def _subscribe(self, queues: list[AbstractQueue]) -> None:
        assert self.consumer is not None
        for q in queues:
            tag = await q.consume(self.consumer.on_message)
            self._subscriptions.append((q, tag))

    async def _subscribe_later(self, queues: list[AbstractQueue]) -> None:
        await asyncio.sleep(self.settings.standby_delay_s)
        if self.consumer is not None and not self.consumer.stopping:
            await self._subscribe(queues)

    async def _reconcile_later(self, deps: Deps, preferred: set[int]) -> None:
        await asyncio.sleep(self.settings.standby_delay_s + self.settings.reconcile_grace_s)
        self._orphans = await reconcile_open_orders(deps, preferred)

    async def stop(self) -> None:
        """Graceful: stop consuming, finish in-flight work, close connections."""
        self.ready = False
        for task in (self._standby_task, self._reconcile_task, *self._orphans):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.consumer is not None:
            self.consumer.stopping = True
            for queue, tag in self._subscriptions:
                with contextlib.suppress(Exception):
                    await queue.cancel(tag)
            self._subscriptions.clear()
            pending = set(self.consumer.tasks)
            if pending:
                log.info("draining %d in-flight commands", len(pending))
                _, late = await asyncio.wait(pending, timeout=self.settings.shutdown_grace_s)
                for task in late:  # their messages get nacked for redelivery
                    task.cancel()
                if late:
                    await asyncio.wait(late, timeout=5)
        close = getattr(self.exchanges, "aclose", None)
        if close is not None:
            await close()
        if self.connection is not None:
            await self.connection.close()
        log.info("worker stopped")

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()
