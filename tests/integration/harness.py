"""Run real workers and a client on the real broker under a unique topology prefix."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from worker.app import Worker
from worker.broker.connect import connect
from worker.broker.topology import Names, delete
from worker.client import OrderClient
from worker.settings import Settings, load_settings

FAST = {"OW_TRACK_POLL_S": "0.05", "OW_TRACK_CYCLE_S": "2", "OW_RETRY_INITIAL_S": "0.01",
        "OW_RETRY_MAX_TOTAL_S": "1", "OW_RECONCILE_DELAY_S": "0.05",
        "OW_STANDBY_DELAY_S": "0.3", "OW_LOG_JSON": "false"}


class Harness:
    def __init__(self, amqp_url: str, **env: str) -> None:
        self.amqp_url = amqp_url
        self.prefix = f"owtest-{uuid.uuid4().hex[:8]}"
        self.env = {**FAST, "AMQP_URL": amqp_url, "OW_PREFIX": self.prefix, **env}
        self.workers: list[Worker] = []
        self._declared_at = float("-inf")

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.env, **overrides)

    @property
    def names(self) -> Names:
        s = self.settings()
        return Names(s.prefix, s.shards)

    async def start_worker(self, **kw: Any) -> Worker:
        exchanges = kw.pop("exchanges", None)
        worker = Worker(self.settings(**kw), exchanges=exchanges)
        self._declared_at = time.monotonic()  # it declares the topology
        await worker.start()
        self.workers.append(worker)
        return worker

    def client(self, **kw: Any) -> OrderClient:
        s = self.settings()
        return OrderClient(self.amqp_url, prefix=s.prefix, shards=s.shards, **kw)

    async def dead_letters(self, expect: int, timeout_s: float = 10) -> list[Any]:
        conn = await connect(self.amqp_url)
        out = []
        async with conn:
            ch = await conn.channel()
            q = await ch.get_queue(self.names.dead_queue, ensure=False)
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout_s
            while len(out) < expect and loop.time() < end:
                msg = await q.get(fail=False)
                if msg is None:
                    await asyncio.sleep(0.1)
                    continue
                await msg.ack()
                out.append(msg)
        return out

    async def ready_count(self, queue: str) -> int:
        conn = await connect(self.amqp_url)
        async with conn:
            ch = await conn.channel()
            q = await ch.declare_queue(queue, passive=True)
            return q.declaration_result.message_count or 0

    async def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(Exception):
                await w.stop()
        # RabbitMQ 3.10: deleting a quorum queue with at-least-once dead-lettering as its
        # dead-letter worker starts can crash the broker's rabbit_fifo_dlx_sup for good
        # (deploy/ensure-broker.sh); give the workers of a short test time to start
        await asyncio.sleep(max(0.0, self._declared_at + 2.0 - time.monotonic()))
        conn = await connect(self.amqp_url)
        async with conn:
            await delete(await conn.channel(), self.names)


@contextlib.asynccontextmanager
async def harness(amqp_url: str, **env: str) -> AsyncIterator[Harness]:
    h = Harness(amqp_url, **env)
    try:
        yield h
    finally:
        await h.close()
