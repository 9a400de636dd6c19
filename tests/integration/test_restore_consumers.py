"""Consumers come back after a broker restart although nothing but their robust
connection references their channel. aio-pika holds a robust connection's channels in a
WeakSet: once the connection drops, such a channel can be garbage-collected before the
reconnect and is then never restored (probes: the consumers of 1 of 3 connections came
back). ``worker.broker.connect.connect_robust`` holds its channels. The collector runs
during the restart here, so the outcome does not depend on when it happens to run; and
aio-pika's log records stay out of pytest's log capture, whose stored tracebacks would
otherwise keep the channels alive (the test then passed without the fix)."""

from __future__ import annotations

import asyncio
import gc
import logging

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from tests.integration.conftest import local_node
from worker.broker.connect import connect, connect_robust
from worker.lab.chaos import restart_broker

N = 3


async def _collect_garbage(stop: asyncio.Event) -> None:
    while not stop.is_set():
        gc.collect()
        await asyncio.sleep(0.2)


async def _consume(url: str, queue_name: str, got: list[int], i: int) -> AbstractRobustConnection:
    """A connection consuming ``queue_name``; only the connection is kept."""
    conn = await connect_robust(url, reconnect_interval=1.0)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=16)
    queue = await channel.declare_queue(queue_name, durable=True,
                                        arguments={"x-queue-type": "quorum"})

    async def on(message: AbstractIncomingMessage) -> None:
        got[i] += 1
        await message.ack()

    await queue.consume(on)
    return conn


@pytest.mark.slow
@pytest.mark.restarts_broker
@pytest.mark.timeout(180)
async def test_every_connection_consumes_again_after_a_broker_restart(amqp_url: str) -> None:
    if not local_node(amqp_url):
        pytest.skip("restarts the broker node: needs a local node and rabbitmqctl")
    quiet = [logging.getLogger(name) for name in ("aio_pika", "aiormq")]
    for logger in quiet:
        logger.propagate = False
    names = [f"owtest-restore-{k}" for k in range(N)]
    got = [0] * N
    conns = [await _consume(amqp_url, name, got, k) for k, name in enumerate(names)]
    stop = asyncio.Event()
    collector = asyncio.create_task(_collect_garbage(stop))
    try:
        await restart_broker()
        await asyncio.sleep(10)  # reconnect_interval is 1 s; quorum queues elect leaders
        stop.set()
        pub = await connect(amqp_url)
        async with pub:
            channel = await pub.channel()
            for name in names:
                await channel.default_exchange.publish(aio_pika.Message(b"x"), name)
            for _ in range(100):  # 20 s
                if all(got):
                    break
                await asyncio.sleep(0.2)
            restored = sum(1 for g in got if g)
            for name in names:
                await channel.queue_delete(name)
        assert restored == N, f"consumers of {restored} of {N} connections came back"
    finally:
        stop.set()
        await collector
        for conn in conns:
            await conn.close()
        for logger in quiet:
            logger.propagate = True
