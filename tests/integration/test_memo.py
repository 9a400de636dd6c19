"""The memo queues on the real broker (worker.broker.memo): a worker that takes a shard
over knows its facts at once, not a carousel cycle (and a command backlog) later."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from schemas import OrderRejected, RejectReason, client_order_id
from schemas.tracking import TrackOrder
from tests.conftest import place
from tests.integration.harness import harness
from worker.broker.memo import MARKER, STALE_MARKER_S, RabbitMemory
from worker.broker.topology import shard_for
from worker.lab.testing import StaticExchanges
from worker.orders.events import ref_of
from worker.orders.outcomes import keep_s
from worker.orders.registry import Entry

LONG_CYCLE = {"OW_TRACK_CYCLE_S": "60"}  # no record comes round during a test


async def test_a_new_owner_refuses_a_place_its_predecessor_tombstoned(amqp_url: str) -> None:
    shared = StaticExchanges()
    async with harness(amqp_url, **LONG_CYCLE) as h:
        first = await h.start_worker(exchanges=shared)
        cmd = place(type="limit", price="40000")
        # what a CancelOrder that found no order leaves behind on the first worker
        assert first.tracker is not None
        tombstone = first.tracker.add(Entry(
            ref=ref_of(cmd), phase="tombstone",
            expires_at=time.time() + keep_s(first.settings)))
        await first.tracker.persist([tombstone])
        await first.stop()
        await h.start_worker(exchanges=shared)  # its record is a minute away
        async with h.client() as client:
            events = await client.submit(cmd, timeout_s=20)
    assert [type(e) for e in events] == [OrderRejected], events
    assert events[0].reason == RejectReason.CANCELED_BEFORE_PLACEMENT  # type: ignore[union-attr]
    paper = await shared.get(cmd.account, cmd.exchange)
    cid = client_order_id(cmd.account, cmd.command_id)
    assert await paper.find_order(cmd.symbol, cid) is None


async def test_readers_take_turns_and_every_fact_stays(amqp_url: str) -> None:
    async with harness(amqp_url, **LONG_CYCLE) as h:
        worker = await h.start_worker()
        assert worker.tracker is not None and worker.connection is not None
        facts = []
        for i in range(50):
            cmd = place(account="memo-acct", command_id=f"memo-{i}")
            facts.append(Entry(ref=ref_of(cmd), phase="tombstone",
                               expires_at=time.time() + 300))
        await worker.tracker.persist(facts)
        shard = shard_for("memo-acct", h.names.shards)
        memory = RabbitMemory(worker.connection, h.names)
        reads = await asyncio.gather(*(memory.recall(shard) for _ in range(4)))
        again = await memory.recall(shard)
    want = {e.ref.client_order_id for e in facts}
    for got in [*reads, again]:
        assert {r.client_order_id for r in got} == want
        assert all(isinstance(r, TrackOrder) and r.phase == "tombstone" for r in got)


async def test_a_dead_readers_marker_is_removed_and_a_bad_message_skipped(
        amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with harness(amqp_url, **LONG_CYCLE) as h:
        worker = await h.start_worker()
        assert worker.connection is not None
        queue = h.names.memo_queue(0)
        channel = await worker.connection.channel()
        old = datetime.now(UTC) - timedelta(seconds=STALE_MARKER_S + 60)
        await channel.default_exchange.publish(aio_pika.Message(
            b"", type=MARKER, message_id="dead-reader", timestamp=old), queue)
        await channel.default_exchange.publish(aio_pika.Message(b"not a record"), queue)
        memory = RabbitMemory(worker.connection, h.names)
        with caplog.at_level(logging.ERROR, "worker.broker.memo"):
            assert await memory.recall(0) == []
            assert await memory.recall(0) == []
        assert sum("unreadable message" in r.message for r in caplog.records) == 2  # stays
        left: list[str | None] = []  # what the queue holds now: no marker of a dead reader
        reader = await worker.connection.channel()
        q = await reader.declare_queue(queue, passive=True)
        async def note(message: AbstractIncomingMessage) -> None:
            left.append(message.type)

        await q.consume(note)
        await asyncio.sleep(0.5)
        await reader.close()
        await channel.close()
    assert left == [None]
