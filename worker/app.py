"""Worker lifecycle: connect, declare, consume, drain on stop.

Start: robust connection, a publisher-confirms channel for events and dead
letters, a consumer channel with bounded prefetch. The worker subscribes
first to its *preferred* shards (shard % worker_count == worker_index), then,
after ``standby_delay_s``, to all others as standby: single-active-consumer
hands a standby queue over only when its active worker goes away.

Every worker also stands by on ``<p>.dead.watch`` (single-active-consumer), the
dead-letter watcher's queue. Tracked orders need no start-up step: their records
come round through the shard queues (worker.orders.tracker).

Stop: cancel the consumers, let in-flight commands finish (up to
``shutdown_grace_s``), nack whatever is still unfinished for redelivery, stop the
tracker's followers (their records keep circulating to the next owner), close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aiormq.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ChannelInvalidStateError,
    ConnectionInternalError,
)

from worker.broker.connect import connect_robust
from worker.broker.consumer import CommandConsumer
from worker.broker.contract import (
    Contract,
    TopologyError,
    mismatch,
    read_contract,
    write_contract,
)
from worker.broker.memo import RabbitMemory
from worker.broker.publisher import RabbitPublisher
from worker.broker.topology import Names, declare, declare_tracking
from worker.crashpoints import CrashPoints
from worker.exchange.factory import ExchangeFactory
from worker.gctune import settle_heap
from worker.metrics import Metrics
from worker.orders.deadwatch import dead_letter_of, on_dead_letter
from worker.orders.tracker import Tracker
from worker.ports import Deps, ExchangeProvider
from worker.settings import Settings

log = logging.getLogger(__name__)

BROKER_INTERNAL_ERROR = (
    "the broker failed to declare the worker's queues ({exc!r}). On RabbitMQ 3.10 this is "
    "usually its dead-lettering supervisor, killed when a quorum queue with at-least-once "
    "dead-lettering was deleted as the node started. Restart the node (queues declared "
    "while it was dead stay down until then) and check the broker's log; `rabbitmqctl eval "
    "'supervisor:restart_child(rabbit_sup, rabbit_fifo_dlx_sup).'` heals it for queues "
    "declared afterwards")


class Worker:
    def __init__(self, settings: Settings, *, exchanges: ExchangeProvider | None = None,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.names = Names(settings.prefix, settings.shards)
        self.metrics = metrics or Metrics()
        self.exchanges = exchanges or ExchangeFactory(settings, metrics=self.metrics)
        self.connection: AbstractRobustConnection | None = None
        self.consumer: CommandConsumer | None = None
        self._subscriptions: list[tuple[AbstractQueue, str]] = []
        self._standby_task: asyncio.Task[None] | None = None
        self.tracker: Tracker | None = None
        self.deps: Deps | None = None
        self.ready = False

    def preferred_shards(self) -> list[int]:
        s = self.settings
        count = max(1, s.worker_count)
        return [k for k in range(s.shards) if k % count == s.worker_index % count]

    async def start(self) -> None:
        s = self.settings
        check = getattr(self.exchanges, "check_exchanges", None)
        if check is not None:  # an exchange we could not place on safely stops start-up
            await check()
        self.connection = await connect_robust(
            s.amqp_url, reconnect_interval=1.0, first=s.worker_index,
            client_properties={"connection_name": f"orderworker-{s.worker_index}"})
        pub = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        recorded = await read_contract(self.connection, self.names, wait_s=2.0)
        if recorded is not None and (
                why := mismatch(recorded, s.shards, "this worker")):
            await self.connection.close()
            raise TopologyError(why)
        try:
            topo = await declare(pub, self.names, s.delivery_limit, s.quorum_group_size)
            contract = Contract(prefix=s.prefix, shards=s.shards,
                                delivery_limit=s.delivery_limit,
                                quorum_group_size=s.quorum_group_size,
                                track_cycle_s=s.track_cycle_s,
                                generation=recorded.generation if recorded else 1)
            if not contract.same_as(recorded):
                await write_contract(pub, self.names, contract)
            await declare_tracking(pub, self.names, s.track_cycle_s, s.quorum_group_size)
        except ConnectionInternalError as exc:
            raise TopologyError(BROKER_INTERNAL_ERROR.format(exc=exc)) from exc
        publisher = RabbitPublisher(topo.events, topo.dlx, self.metrics,
                                    tracks=pub.default_exchange, names=self.names)
        self.tracker = Tracker(s, self.exchanges, publisher, self.metrics,
                               memory=RabbitMemory(self.connection, self.names))
        deps = self.deps = Deps(settings=s, exchanges=self.exchanges, publisher=publisher,
                                metrics=self.metrics, tracker=self.tracker,
                                crash=CrashPoints(s.crash_points))
        self.consumer = CommandConsumer(deps, publisher, self.names)
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
        watch = await channel.declare_queue(self.names.dead_watch_queue, passive=True)
        self._subscriptions.append((watch, await watch.consume(self._on_dead_letter)))
        settle_heap()
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

    async def _on_dead_letter(self, message: AbstractIncomingMessage) -> None:
        """Ack only once the dead letter's outcome (event or record) is confirmed."""
        assert self.deps is not None
        dead = dead_letter_of(message.body, message.headers or {}, self.names)
        try:
            await on_dead_letter(dead, self.deps)
        except Exception:
            log.exception("dead letter not handled; it will come back")
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        with contextlib.suppress(Exception):
            await message.ack()

    async def stop(self) -> None:
        """Graceful: stop consuming, finish in-flight work, close connections."""
        self.ready = False
        for task in (self._standby_task,):
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
        if self.tracker is not None:
            await self.tracker.close()
        close = getattr(self.exchanges, "aclose", None)
        if close is not None:
            await close()
        if self.connection is not None:
            await self.connection.close()
        log.info("worker stopped")

    async def start_riding_out(self, retry_for_s: float = 60.0) -> None:
        """``start``, started over on the next address when the connection drops while
        starting (the node died under it). Without this the process exits and its
        supervisor restarts it, seconds later at best, or with a crash-loop back-off. A
        broker that never answered still fails at once (wrong address, auth)."""
        give_up_at = asyncio.get_running_loop().time() + retry_for_s
        while True:
            try:
                await self.start()
                return
            except (AMQPConnectionError, ChannelInvalidStateError, ConnectionError) as exc:
                if (self.connection is None or isinstance(exc, AMQPChannelError)
                        or asyncio.get_running_loop().time() > give_up_at):
                    raise  # never connected, or the broker refused something: no retry
                log.warning("broker connection lost while starting (%r); starting over", exc)
                await self._abandon_start()
                await asyncio.sleep(1.0)

    async def _abandon_start(self) -> None:
        if self._standby_task is not None:
            self._standby_task.cancel()
            self._standby_task = None
        self._subscriptions.clear()
        if self.consumer is not None:
            self.consumer.stopping = True  # hand back whatever still arrives
        with contextlib.suppress(Exception):
            if self.tracker is not None:
                await self.tracker.close()
        with contextlib.suppress(Exception):
            if self.connection is not None:
                await self.connection.close()
        self.connection = self.consumer = self.tracker = self.deps = None

    async def run(self, stop: asyncio.Event) -> None:
        await self.start_riding_out()
        try:
            await stop.wait()
        finally:
            await self.stop()

