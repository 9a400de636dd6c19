"""The broker as the workers see it: one shard queue with single-active-consumer,
ack/nack, redelivery of a lost consumer's unacked messages (at the head, in order),
the tracking-record carousel, and publisher confirms that can fail.

It duck-types the aio-pika pieces the real ``CommandConsumer`` touches
(``AbstractIncomingMessage``: body, exchange, routing_key, headers, redelivered,
message_id, ack, nack; the publisher's ``dead_letter``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from schemas import Event
from schemas.tracking import TrackOrder

if TYPE_CHECKING:
    from worker.lab.sim_placement.world import SimWorker, World


@dataclass
class Envelope:
    seq: int
    body: bytes
    exchange: str
    label: str
    """command_id (with a publish number) or ``record``."""
    count: int = 0
    redelivered: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    """Publisher headers (a client re-send carries ``REPUBLISH_HEADER``)."""


class SimChannel:
    """The channel a worker's deliveries come on. The broker closes it when it gives up on
    the worker (and only then redelivers); a round trip on it (``basic_qos``) answers only
    while it is open and the worker can reach the broker: what a fence needs."""

    def __init__(self, world: World, worker: SimWorker) -> None:
        self.world, self.worker = world, worker
        self.closed_by_broker = False

    @property
    def is_closed(self) -> bool:
        return self.closed_by_broker or self.worker.dead

    async def basic_qos(self, prefetch_count: int = 0,
                        timeout: float | None = None) -> None:  # noqa: ASYNC109 (aio-pika)
        w = self.world
        n = await w.port_call("basic_qos")
        await asyncio.sleep(w.latency())
        if self.is_closed or not self.worker.reachable:
            await asyncio.sleep(timeout or 1.0)
            raise TimeoutError("basic.qos: no answer (simulated)")
        await asyncio.sleep(w.latency())
        await w.port_done(n)


class SimMessage:
    """One delivery of an envelope to one worker."""

    routing_key = "0"

    def __init__(self, broker: SimBroker, worker: SimWorker, env: Envelope, tag: int) -> None:
        self._broker, self._worker, self._env, self._tag = broker, worker, env, tag
        self._channel = worker.channel
        self.body, self.exchange = env.body, env.exchange
        self.headers: dict[str, Any] = {**env.headers, "x-delivery-count": env.count}
        self.redelivered = env.redelivered
        self.message_id = f"{env.label}#{tag}"

    @property
    def channel(self) -> SimChannel:
        if self._channel.is_closed:
            raise RuntimeError("channel closed (simulated)")
        return self._channel

    async def ack(self) -> None:
        await self._broker.settle(self._worker, self._tag, requeue=False)

    async def nack(self, requeue: bool = True) -> None:
        await self._broker.settle(self._worker, self._tag, requeue=requeue)


class SimBroker:
    def __init__(self, world: World) -> None:
        self.world = world
        self.ready: deque[Envelope] = deque()
        self.unacked: dict[int, tuple[SimWorker, Envelope]] = {}
        self.consumers: list[SimWorker] = []
        self.settled: dict[str, int] = {}
        """label -> times a delivery of it was acked."""
        self.tracking = world.names.tracking
        self._seq = itertools.count()
        self._tags = itertools.count(1)
        self._pumping = False

    # -- queue ---------------------------------------------------------------------------
    @property
    def owner(self) -> SimWorker | None:
        """Single active consumer: the first one the broker still believes alive."""
        return self.consumers[0] if self.consumers else None

    def publish(self, body: bytes, exchange: str, label: str,
                headers: dict[str, Any] | None = None) -> None:
        self.ready.append(Envelope(next(self._seq), body, exchange, label,
                                   headers=headers or {}))
        self._kick()

    def _kick(self) -> None:
        if not self._pumping:
            self._pumping = True
            self.world.loop.call_later(0.001, self._pump)

    def _pump(self) -> None:
        self._pumping = False
        owner = self.owner
        while owner is not None and self.ready:
            env = self.ready.popleft()
            if env.count > self.world.settings.delivery_limit:
                self.world.note(f"broker: {env.label} dead-lettered (delivery limit)")
                self.settled[env.label] = self.settled.get(env.label, 0) + 1
                continue
            tag = next(self._tags)
            self.unacked[tag] = (owner, env)
            if owner.reachable:  # else lost on the way; redelivered once the broker notices
                owner.deliver(SimMessage(self, owner, env, tag))

    async def settle(self, worker: SimWorker, tag: int, *, requeue: bool) -> None:
        await self.world.port_call("settle")
        await asyncio.sleep(self.world.latency())
        held = self.unacked.get(tag)
        if not worker.reachable or held is None or held[0] is not worker:
            raise ConnectionError("channel closed: delivery tag unknown (simulated)")
        del self.unacked[tag]
        env = held[1]
        if requeue:
            self._requeue([env])
        else:
            self.settled[env.label] = self.settled.get(env.label, 0) + 1
            self.world.note(f"broker: {env.label} acked by {worker.name}")

    def _requeue(self, envs: list[Envelope]) -> None:
        for env in sorted(envs, key=lambda e: e.seq, reverse=True):
            env.count += 1
            env.redelivered = True
            self.ready.appendleft(env)
        self._kick()

    def join(self, worker: SimWorker) -> None:
        self.consumers.append(worker)
        self._kick()

    def lost(self, worker: SimWorker) -> None:
        """The broker noticed ``worker`` is gone: its unacked messages go to the next one."""
        if worker in self.consumers:
            self.consumers.remove(worker)
        worker.channel.closed_by_broker = True
        mine = [tag for tag, (w, _) in self.unacked.items() if w is worker]
        envs = [self.unacked.pop(tag)[1] for tag in mine]
        self.world.note(f"broker: lost {worker.name}, redelivering {len(envs)}")
        self._requeue(envs)

    # -- records ---------------------------------------------------------------------------
    def carousel_s(self) -> float:
        """How long a message takes round the carousel (opt-in ``record_lag``: behind a
        command backlog; constant, so the carousel keeps its order)."""
        lag = self.world.sched.record_lag
        if lag:
            self.world.hit("record_lag")
        return self.world.settings.track_cycle_s * (1.0 + lag)

    def put_record(self, rec: TrackOrder) -> None:
        self.world.loop.call_later(self.carousel_s(), self.publish, msgspec.json.encode(rec),
                                   self.tracking, "record")


class SimPublisher:
    """A worker's confirmed publisher (the ``EventPublisher`` port) and dead-letterer."""

    def __init__(self, world: World, worker: SimWorker) -> None:
        self.world, self.worker = world, worker

    async def _reach(self, op: str, what: str) -> int:
        """A port call reaching the broker: its number, or ConnectionError (partitioned)."""
        w = self.world
        n = await w.port_call(op)
        await asyncio.sleep(w.latency())
        if not self.worker.reachable:
            await asyncio.sleep(w.rng.uniform(0.1, 2.0))
            raise ConnectionError(f"{what}: connection lost (simulated)")
        return n

    async def publish(self, events: Sequence[Event], records: Sequence[TrackOrder] = (),
                      *, facts: Sequence[TrackOrder] = ()) -> None:
        w = self.world
        n = await self._reach("publish", "publisher")
        if w.publish_fails():
            if w.rng.random() < 0.5:
                w.store(self.worker, events, records, facts)
            raise ConnectionError("publisher: confirm timed out (simulated)")
        w.store(self.worker, events, records, facts)
        await w.port_done(n)

    async def recall(self, shard: int) -> Sequence[TrackOrder]:
        """The ``Memory`` port: the memo queue is read straight, never behind a backlog."""
        w = self.world
        n = await self._reach("recall", "memo")
        facts = list(w.memo)
        await asyncio.sleep(w.latency())
        await w.port_done(n)
        return facts

    async def defer(self, body: bytes, shard: int, headers: dict[str, int],
                    message_id: str | None = None) -> None:
        w = self.world
        n = await w.port_call("publish")
        await asyncio.sleep(w.latency())
        if not self.worker.reachable or w.publish_fails():
            raise ConnectionError("publisher: deferred command not confirmed (simulated)")
        w.note(f"{self.worker.name}: deferred a command ({headers})")
        w.loop.call_later(w.broker.carousel_s(), w.broker.publish, body, w.broker.tracking,
                          f"deferred@{headers.get('x-ow-deferred')}", dict(headers))
        await w.port_done(n)

    async def dead_letter(self, body: bytes, reason: str, ids: dict[str, str]) -> None:
        w = self.world
        n = await w.port_call("dead_letter")
        await asyncio.sleep(w.latency())
        if not self.worker.reachable:
            raise ConnectionError("publisher: connection lost (simulated)")
        w.dead_letters.append((ids.get("command_id", ""), reason))
        await w.port_done(n)
