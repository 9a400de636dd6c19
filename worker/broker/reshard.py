"""``orderworker reshard --to N``: change the shard count with every worker stopped.

One account must never have two active consumers, so the count changes while nobody
consumes, in phases recorded in the contract (a crash or Ctrl-C is resumed by running
the same command again; every worker refuses to start until the last phase is done):

1. ``staging``: the contract says a change is under way (workers refuse to start,
   clients refuse to publish); every shard queue must have no consumer; the old
   routing keys ``<k>/<old>`` are unbound, so a client still routing with the old
   count gets its command back; every message of the old shard, tracking and memo queues
   is moved, queue by queue in order, into ``<p>.reshard`` (confirmed before each ack).
2. ``distributing``: the new shard and tracking queues are declared and bound with
   ``<k>/<new>``; each staged message goes to its account's new shard (commands
   through ``<p>.commands``, tracking records into the new ``<p>.track.<k>``, whence
   they reach the shard queue through ``<p>.tracking`` as usual, facts into the new
   ``<p>.memo.<k>``), then queues beyond the new count are deleted.
3. The contract records the new count (generation + 1) and ``ready``.

An account's messages were in one old queue and are moved in order, so its commands
keep their order. A crash between a confirmed publish and its ack can duplicate a
message: commands are idempotent (client order id) and spare tracking records are
dropped by the tracker. A deferred command found in a tracking queue (a cancel copy
waiting behind the records, worker.orders.cancel) goes through ``<p>.commands`` like any
command, headers kept: it may now arrive before the records it waited for, and decides
on what its worker knows once its deferrals are used up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelClosed

from schemas.ids import canonical_account
from schemas.tracking import TrackBatch, TrackOrder, batches
from worker.broker.connect import connect
from worker.broker.contract import TopologyError, read_contract, write_contract
from worker.broker.memo import MARKER, MEMO_HEADER, memo_message
from worker.broker.publisher import by_shard, record_message
from worker.broker.topology import (
    Names,
    command_key,
    declare,
    declare_tracking,
    quorum,
    shard_for,
)
from worker.orders.intake import parse


@dataclass
class ReshardReport:
    old: int
    new: int
    staged: int = 0
    commands: int = 0
    records: int = 0
    unreadable: int = 0


def staging_queue(prefix: str) -> str:
    return f"{prefix}.reshard"


async def reshard(amqp_url: str, prefix: str, to_shards: int, *,
                  settle_s: float = 2.0) -> ReshardReport:
    """Run (or resume) a change of prefix ``prefix`` to ``to_shards`` shards."""
    if to_shards < 1:
        raise TopologyError("the new shard count must be at least 1")
    async with await connect(amqp_url) as conn:
        contract = await read_contract(conn, Names(prefix, 0))
        if contract is None:
            raise TopologyError(f"no worker has recorded the topology of prefix {prefix!r}")
        if contract.state != "ready" and contract.next_shards != to_shards:
            raise TopologyError(f"a change to {contract.next_shards} shards is under way: "
                                f"finish it with --to {contract.next_shards} first")
        if contract.state == "ready" and contract.shards == to_shards:
            return ReshardReport(contract.shards, to_shards)
        old, new = Names(prefix, contract.shards), Names(prefix, to_shards)
        report = ReshardReport(contract.shards, to_shards)
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=100)
        await _check_idle(conn, old)
        if contract.state == "ready":
            ready = contract
            contract = msgspec.structs.replace(contract, state="staging", next_shards=to_shards)
            await write_contract(channel, old, contract)
            await asyncio.sleep(settle_s)  # a worker that read "ready" just before is seen
            try:
                await _check_idle(conn, old)
            except TopologyError:
                await write_contract(channel, old, ready)  # nothing was moved yet
                raise
        if contract.state == "staging":
            staging = await channel.declare_queue(
                staging_queue(prefix), durable=True, arguments=quorum(contract.quorum_group_size))
            commands = await channel.get_exchange(old.commands)
            for k in range(old.shards):
                shard_queue = await channel.declare_queue(old.shard_queue(k), passive=True)
                await shard_queue.unbind(commands, command_key(k, old.shards))
            # tracking queues first: a record expiring meanwhile lands in a shard queue,
            # which is drained after
            for name in [*map(old.track_queue, range(old.shards)),
                         *map(old.shard_queue, range(old.shards)),
                         *map(old.memo_queue, range(old.shards))]:
                report.staged += await _move(channel, name, staging.name)
            contract = msgspec.structs.replace(contract, state="distributing")
            await write_contract(channel, old, contract)
        await declare(channel, new, contract.delivery_limit, contract.quorum_group_size)
        await declare_tracking(channel, new, contract.track_cycle_s, contract.quorum_group_size)
        await _distribute(channel, new, report)
        for k in range(new.shards, old.shards):  # shrinking: the old tail is empty now
            await _delete_empty(conn, old.shard_queue(k))
            await _delete_empty(conn, old.track_queue(k))
            await _delete_empty(conn, old.memo_queue(k))
        await write_contract(channel, new, msgspec.structs.replace(
            contract, shards=to_shards, state="ready", next_shards=None,
            generation=contract.generation + 1))
        await _delete_empty(conn, staging_queue(prefix))
    return report


async def _delete_empty(conn: aio_pika.abc.AbstractConnection, name: str) -> None:
    """Delete queue ``name`` once it is empty (quorum queues refuse ``if_empty``)."""
    channel = await conn.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except ChannelClosed:
        return
    if queue.declaration_result.message_count:
        raise TopologyError(f"{name} is not empty after the move: run this again")
    await channel.queue_delete(name)
    await channel.close()


async def _check_idle(conn: aio_pika.abc.AbstractConnection, names: Names) -> None:
    for name in [*(names.shard_queue(k) for k in range(names.shards)),
                 *(names.track_queue(k) for k in range(names.shards)),
                 *(names.memo_queue(k) for k in range(names.shards)), names.dead_watch_queue]:
        channel = await conn.channel()
        try:
            q = await channel.declare_queue(name, passive=True)
        except ChannelClosed:
            continue
        finally:
            if not channel.is_closed:
                await channel.close()
        if q.declaration_result.consumer_count:
            raise TopologyError(f"{name} has {q.declaration_result.consumer_count} consumer(s): "
                                "stop every worker first, then run this again")


async def drain(channel: AbstractChannel, name: str,
                handle: Callable[[AbstractIncomingMessage], Awaitable[None]]) -> int:
    """Consume every message of queue ``name`` in order, ``handle`` each, ack it once
    ``handle`` returned; how many. (Consumed, not fetched: quorum queues with single
    active consumer refuse basic.get.)"""
    done = 0
    while True:
        queue: AbstractQueue = await channel.declare_queue(name, passive=True)
        left = queue.declaration_result.message_count or 0
        if not left:
            return done
        async with queue.iterator() as messages:
            async for msg in messages:
                await handle(msg)
                await msg.ack()
                done += 1
                left -= 1
                if not left:
                    break


async def _move(channel: AbstractChannel, source: str, dest: str) -> int:
    """Move every message of ``source`` to the end of ``dest`` in order; how many."""
    async def forward(msg: AbstractIncomingMessage) -> None:
        await channel.default_exchange.publish(_copy(msg), dest, timeout=30)

    return await drain(channel, source, forward)


def _copy(msg: aio_pika.abc.AbstractIncomingMessage) -> aio_pika.Message:
    return aio_pika.Message(msg.body, headers=dict(msg.headers or {}), type=msg.type,
                            content_type=msg.content_type, message_id=msg.message_id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def _distribute(channel: AbstractChannel, new: Names, report: ReshardReport) -> None:
    commands = await channel.get_exchange(new.commands)

    async def route(msg: AbstractIncomingMessage) -> None:
        if msg.type == MARKER:  # a memo reader's, left behind
            return
        if (msg.headers or {}).get(MEMO_HEADER):  # a fact: to its account's new memo queue
            item = parse(msg.body, tracking=True)
            facts = item.records if isinstance(item, TrackBatch) else (item,)
            for fact in facts:
                if isinstance(fact, TrackOrder):
                    await channel.default_exchange.publish(
                        memo_message(fact), new.memo_queue(shard_for(fact.account,
                                                                     new.shards)),
                        mandatory=True, timeout=30)
                    report.records += 1
            return
        item = parse(msg.body, tracking=True)
        if isinstance(item, TrackOrder | TrackBatch):  # a batch may span several new shards
            records = item.records if isinstance(item, TrackBatch) else (item,)
            for k, group in by_shard(records, new.shards).items():
                for batch in batches(group):
                    await channel.default_exchange.publish(
                        record_message(batch), new.track_queue(k), timeout=30)
            report.records += len(records)
            return
        account = getattr(item, "account", None) or getattr(item, "ids", {}).get("account")
        shard = (shard_for(canonical_account(account), new.shards)
                 if isinstance(account, str) else 0)
        # commands, and unreadable bodies the worker will dead-letter with a reason
        await commands.publish(_copy(msg), command_key(shard, new.shards),
                               mandatory=True, timeout=30)
        report.commands += 1
        report.unreadable += not hasattr(item, "account")

    await drain(channel, staging_queue(new.prefix), route)
