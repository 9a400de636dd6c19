"""A channel renewed after a nack keeps its declarations and its consumer (real broker)."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika

from worker.broker.connect import connect_robust, renew_channel, underlay_of


async def test_renewed_channel_publishes_and_keeps_consuming(amqp_url: str) -> None:
    name = f"owtest-renew-{uuid.uuid4().hex[:8]}"
    conn = await connect_robust(amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)
        queue = await channel.declare_queue(name, exclusive=True)
        await queue.bind(exchange)
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            got.put_nowait(message.body)

        await queue.consume(on_message)
        await exchange.publish(aio_pika.Message(b"before"), "", mandatory=True)
        old = await underlay_of(exchange)
        await renew_channel(exchange, old)
        assert await underlay_of(exchange) is not old
        await renew_channel(exchange, old)  # already renewed since `old`: no-op
        await exchange.publish(aio_pika.Message(b"after"), "", mandatory=True)
        assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [b"before", b"after"]
        await channel.exchange_delete(name)
    finally:
        await conn.close()
