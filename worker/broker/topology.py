"""RabbitMQ topology, declared idempotently by the workers (clients only read it).

    <p>.commands  (direct) --"<k>/<shards>"--> <p>.commands.<k>  quorum, single-active-consumer,
    <p>.tracking  (direct) --"<k>"--------->  (same queue)      delivery-limit, DLX -> <p>.dlx
    <p>.track.<shard>  quorum wait queue: message TTL = track cycle, dead-letters
                       (at-least-once) via <p>.tracking back into <p>.commands.<shard>;
                       holds tracking records and deferred commands (x-ow-deferred)
    <p>.events    (topic)  --"order.#"--> <p>.events.audit     quorum (events are never unroutable)
    <p>.dlx       (fanout) -------------> <p>.dead             quorum (poison + given-up commands)
                           -------------> <p>.dead.watch       quorum, single-active-consumer:
                                                               the dead-letter watcher

A command's shard is crc32(canonical account) % shards (schemas.ids.canonical_account),
so one account (and every alias of it) always lands in one queue, and
single-active-consumer gives that queue to one worker at a time.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from schemas.ids import canonical_account


@dataclass(frozen=True)
class Names:
    prefix: str
    shards: int

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    def shard_queue(self, shard: int) -> str:
        return f"{self.prefix}.commands.{shard}"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def audit_queue(self) -> str:
        return f"{self.prefix}.events.audit"

    @property
    def dlx(self) -> str:
        return f"{self.prefix}.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def tracking(self) -> str:
        return f"{self.prefix}.tracking"

    def track_queue(self, shard: int) -> str:
        return f"{self.prefix}.track.{shard}"

    def memo_queue(self, shard: int) -> str:
        return f"{self.prefix}.memo.{shard}"

    @property
    def dead_watch_queue(self) -> str:
        return f"{self.prefix}.dead.watch"


@functools.lru_cache(maxsize=65_536)  # per command and per event: compute once per account
def shard_for(account: str, shards: int) -> int:
    """``crc32(canonical account) % shards``: every alias of an account, one shard."""
    return zlib.crc32(canonical_account(account).encode()) % shards


def command_key(shard: int, shards: int) -> str:
    """Routing key of shard ``shard`` on ``<p>.commands``: it names the shard count too, so
    a publisher routing with another count gets its command back (unroutable)."""
    return f"{shard}/{shards}"


def shard_of_key(key: str) -> int | None:
    """The shard a ``command_key`` (or a tracking key ``"<shard>"``) names."""
    head = key.split("/", 1)[0]
    return int(head) if head.isdigit() else None


_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


@functools.lru_cache(maxsize=65_536)  # two events per order, the same few keys
def event_routing_key(account: str, symbol: str, kind: str) -> str:
    """``order.<account>.<symbol>.<kind>``; symbol ``BTC/USDT`` becomes ``BTC_USDT``."""
    return f"order.{_UNSAFE.sub('_', account)}.{_UNSAFE.sub('_', symbol) or '_'}.{kind}"


@dataclass
class Topology:
    commands: AbstractExchange
    events: AbstractExchange
    dlx: AbstractExchange
    shard_queues: list[AbstractQueue]
    audit_queue: AbstractQueue
    dead_queue: AbstractQueue


REPUBLISH_HEADER = "x-ow-attempt"
"""Set by a publisher on a command it sends again after an unconfirmed publish (2, 3...):
the worker then looks the order up before creating it (worker.orders.lookup)."""
DEFER_HEADER = "x-ow-deferred"
"""On a command a worker sent round the carousel to decide later: how often (1, 2...)."""
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}


def quorum(group_size: int | None = None) -> dict[str, Any]:
    """Quorum-queue arguments: ``group_size`` replicas per queue (``OW_QUORUM_GROUP_SIZE``;
    None: the broker's default, 3 capped at the cluster size). Every declarer must agree:
    the broker refuses a redeclaration with another value."""
    return QUORUM if group_size is None else {**QUORUM, "x-quorum-initial-group-size": group_size}


async def declare(channel: AbstractChannel, names: Names, delivery_limit: int,
                  quorum_group_size: int | None = None, *, owner: bool = True) -> Topology:
    """Declare the command/event topology. ``owner`` (workers): the shard queues get this
    worker's arguments, and a mismatch with existing ones stops the worker. Not owner
    (clients, tools): shard queues are the workers' to declare; a client publishing
    before any worker declared them gets its command back as unroutable."""
    quorum_args = quorum(quorum_group_size)
    commands = await channel.declare_exchange(names.commands, aio_pika.ExchangeType.DIRECT,
                                              durable=True)
    events = await channel.declare_exchange(names.events, aio_pika.ExchangeType.TOPIC,
                                            durable=True)
    dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.FANOUT, durable=True)
    dead = await channel.declare_queue(names.dead_queue, arguments=quorum_args, durable=True)
    await dead.bind(dlx)
    audit = await channel.declare_queue(names.audit_queue, durable=True, arguments={
        **quorum_args, "x-dead-letter-exchange": names.dlx})
    await audit.bind(events, "order.#")
    shard_args: dict[str, Any] = {
        **quorum_args,
        "x-single-active-consumer": True,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.dlx,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    queues = []
    for shard in range(names.shards if owner else 0):
        q = await channel.declare_queue(names.shard_queue(shard), arguments=shard_args,
                                        durable=True)
        await q.bind(commands, command_key(shard, names.shards))
        queues.append(q)
    return Topology(commands, events, dlx, queues, audit, dead)


async def declare_tracking(channel: AbstractChannel, names: Names, cycle_s: float,
                           quorum_group_size: int | None = None) -> None:
    """The tracker's carousel and the dead-letter watcher's queue (workers only)."""
    quorum_args = quorum(quorum_group_size)
    tracking = await channel.declare_exchange(names.tracking, aio_pika.ExchangeType.DIRECT,
                                              durable=True)
    for shard in range(names.shards):
        shard_queue = await channel.declare_queue(names.shard_queue(shard), passive=True)
        await shard_queue.bind(tracking, str(shard))
        await channel.declare_queue(names.track_queue(shard), durable=True, arguments={
            **quorum_args,
            "x-message-ttl": int(cycle_s * 1000),
            "x-dead-letter-exchange": names.tracking,
            "x-dead-letter-routing-key": str(shard),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
        # facts, read whole at a takeover (worker.broker.memo); per-message TTL
        await channel.declare_queue(names.memo_queue(shard), durable=True, arguments={
            **quorum_args, "x-single-active-consumer": True})
    watch = await channel.declare_queue(names.dead_watch_queue, durable=True, arguments={
        **quorum_args, "x-single-active-consumer": True})
    await watch.bind(names.dlx)


async def delete(channel: AbstractChannel, names: Names) -> None:
    """Remove everything ``declare`` and ``declare_tracking`` made (tests and tooling)."""
    for shard in range(names.shards):
        await channel.queue_delete(names.shard_queue(shard))
        await channel.queue_delete(names.track_queue(shard))
        await channel.queue_delete(names.memo_queue(shard))
    for q in (names.audit_queue, names.dead_queue, names.dead_watch_queue,
              f"{names.prefix}.contract"):
        await channel.queue_delete(q)
    for ex in (names.commands, names.events, names.dlx, names.tracking):
        await channel.exchange_delete(ex)
