"""The shard contract: the topology the workers run, recorded where clients read it.

Workers write one persistent message into ``<p>.contract`` (a quorum queue holding at
most one message, so it survives the loss of a cluster node): shard count, shard-queue
arguments and a generation number bumped by every shard-count change. Clients and
tools read it (``basic.get`` then requeue: read permission only, nothing declared)
and refuse to publish when their own shard count differs.

The shard count is also part of every command's routing key (``"<shard>/<shards>"``),
so a client that still routes with an old count gets its command back as unroutable
instead of landing an account in a queue that belongs to other accounts now.

A worker whose ``OW_SHARDS`` differs from the contract refuses to start; so does any
worker while ``orderworker reshard`` runs (``state`` other than ``ready``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelClosed, DeliveryError

from worker.broker.topology import Names, command_key, quorum

__all__ = ["Contract", "TopologyError", "command_key", "mismatch", "read_contract",
           "write_contract"]

CONTRACT_QUEUE_ARGS: dict[str, Any] = {
    "x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "drop-head",
    # every read returns the message (nack + requeue), which counts as a delivery
    "x-delivery-limit": 1_000_000_000}


class Contract(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    prefix: str
    shards: int
    delivery_limit: int
    quorum_group_size: int | None = None
    track_cycle_s: float = 10.0
    generation: int = 1
    """Bumped by every shard-count change."""
    state: str = "ready"
    """``ready``; ``staging`` or ``distributing`` while ``orderworker reshard`` runs."""
    next_shards: int | None = None
    """The count ``orderworker reshard`` is changing to."""
    written_at: float = 0.0
    """Unix time of the write; a reader that finds two copies keeps the newest."""

    def same_as(self, other: Contract | None) -> bool:
        """Equal but for ``written_at``."""
        return other is not None and msgspec.structs.replace(other, written_at=0.0) == \
            msgspec.structs.replace(self, written_at=0.0)


class TopologyError(RuntimeError):
    """The broker's topology does not match this component's settings (the text says how)."""


def contract_queue(names: Names) -> str:
    return f"{names.prefix}.contract"


async def read_contract(connection: AbstractConnection, names: Names,
                        wait_s: float = 5.0) -> Contract | None:
    """The recorded contract, or None when no worker ever recorded one. Another reader
    may hold the message for a moment: retried for up to ``wait_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + wait_s
    while True:
        channel = await connection.channel()
        try:
            try:
                queue = await channel.declare_queue(contract_queue(names), passive=True)
            except ChannelClosed:
                return None  # no worker ever declared it
            found: list[tuple[Contract, AbstractIncomingMessage]] = []
            while len(found) < 10 and (m := await queue.get(fail=False, no_ack=False)):
                found.append((msgspec.json.decode(m.body, type=Contract), m))
            if found:  # normally one; keep the newest, drop stale copies
                newest = max(found, key=lambda f: (f[0].generation, f[0].written_at))
                for _, message in found:
                    if message is newest[1]:
                        await message.nack(requeue=True)
                    else:
                        await message.ack()
                return newest[0]
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()
        if loop.time() > end:
            return None
        await asyncio.sleep(0.05)


async def write_contract(channel: AbstractChannel, names: Names, contract: Contract) -> None:
    """Record ``contract`` (replaces the previous one); ``channel`` has publisher confirms."""
    await channel.declare_queue(contract_queue(names), durable=True, arguments={
        **CONTRACT_QUEUE_ARGS, **quorum(contract.quorum_group_size)})
    # A nack (seen once while three workers started together) leaves the old contract in
    # place; the write replaces it whole, so writing again is safe. Bounded: 5 tries.
    for attempt in range(5):
        contract = msgspec.structs.replace(contract, written_at=time.time())
        try:
            await channel.default_exchange.publish(
                aio_pika.Message(msgspec.json.encode(contract), content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                contract_queue(names), timeout=30)
            return
        except DeliveryError as exc:
            last = exc
            await asyncio.sleep(0.2 * 2 ** attempt)
    raise TopologyError(f"the broker refused the shard contract in {contract_queue(names)!r} "
                        f"5 times (last: {last}); check the queue and the node's log")


def mismatch(contract: Contract, shards: int, who: str) -> str | None:
    """Why ``who`` with ``shards`` must not use the topology ``contract`` records, or None."""
    if contract.state != "ready":
        return (f"the shard count of prefix {contract.prefix!r} is being changed from "
                f"{contract.shards} to {contract.next_shards} (orderworker reshard, state "
                f"{contract.state!r}); try again once it is done")
    if contract.shards != shards:
        return (f"the workers of prefix {contract.prefix!r} use {contract.shards} shards "
                f"(contract generation {contract.generation}) but {who} uses {shards}: set "
                f"OW_SHARDS={contract.shards} (or leave the client's shards unset to follow "
                f"the workers); to change the count see docs/operations.md")
    return None
