"""A tracking record that reaches a shard queue's delivery limit, on the real broker: the
headers the broker gives it must read as a record from a shard queue, so the dead-letter
watcher puts it back into the carousel (worker.orders.deadwatch.dead_letter_of)."""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractIncomingMessage

from schemas.tracking import TrackOrder
from tests.integration.harness import harness
from worker.broker.connect import connect
from worker.broker.publisher import record_message
from worker.broker.topology import declare, declare_tracking
from worker.orders.deadwatch import dead_letter_of


@pytest.mark.timeout(60)
async def test_record_at_delivery_limit_reads_as_a_shard_queue_record(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        names = h.names
        conn = await connect(amqp_url)
        async with conn:
            ch = await conn.channel()
            await declare(ch, names, delivery_limit=2)
            await declare_tracking(ch, names, cycle_s=0.2)
            rec = TrackOrder(command_id="c1", account="a", exchange="paper",
                             symbol="BTC/USDT", client_order_id="ow-x", phase="open",
                             exchange_order_id="1")
            await ch.default_exchange.publish(record_message(rec), names.track_queue(0))

            async def refuse(message: AbstractIncomingMessage) -> None:
                await message.nack(requeue=True)  # a worker failing on it, again and again

            shard = await ch.declare_queue(names.shard_queue(0), passive=True)
            await shard.consume(refuse)
            dead: asyncio.Future[AbstractIncomingMessage] = \
                asyncio.get_running_loop().create_future()

            async def watch(message: AbstractIncomingMessage) -> None:
                await message.ack()
                if not dead.done():
                    dead.set_result(message)

            watcher = await ch.declare_queue(names.dead_watch_queue, passive=True)
            await watcher.consume(watch)
            message = await asyncio.wait_for(dead, 30)
    letter = dead_letter_of(message.body, message.headers or {}, names)
    assert letter.broker_reason == "delivery_limit"
    assert letter.from_shard_queue and letter.via_tracking
