"""Truthful readiness: /readyz follows the broker (through a proxy we cut, never the
shared broker), the audit consumer serves its own endpoints, probes are not logged at INFO."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from tests.conftest import place
from tests.integration.harness import harness
from tests.integration.proxy import CuttableProxy
from worker.audit.consumer import AuditConsumer
from worker.audit.store import MemoryStore
from worker.observability import serve_audit_observability, serve_observability


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def proxied(amqp_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    parts = urlsplit(amqp_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    port = await proxy.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc))
    await proxy.close()


async def _until(http: aiohttp.ClientSession, url: str, status: int, limit_s: float) -> float:
    """Seconds until ``url`` answers ``status``; fails after ``limit_s``."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        async with http.get(url) as resp:
            if resp.status == status:
                return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {limit_s} s")


async def test_readyz_follows_the_broker_connection(proxied: tuple[CuttableProxy, str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    proxy, url = proxied
    port = _free_port()
    async with harness(url) as h:
        worker = await h.start_worker()
        runner = await serve_observability(worker, port, host="127.0.0.1",
                                           probe_interval_s=0.5)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                caplog.set_level(logging.INFO, logger="aiohttp.access")
                await _until(http, f"{base}/readyz", 200, 5)
                assert not [r for r in caplog.records if r.name == "aiohttp.access"
                            and r.levelno >= logging.INFO], "probes logged at INFO"
                proxy.cut()
                to_down = await _until(http, f"{base}/readyz", 503, 5)
                metrics = await (await http.get(f"{base}/metrics")).text()
                assert "ow_broker_up 0.0" in metrics
                proxy.restore()
                to_up = await _until(http, f"{base}/readyz", 200, 20)
                proxy.blackhole()  # silent network: only the round trip notices
                to_silent = await _until(http, f"{base}/readyz", 503, 8)
                proxy.restore()
                await _until(http, f"{base}/readyz", 200, 30)
                async with h.client() as client:  # the worker works again after all that
                    await client.submit(place(), timeout_s=30)
                assert "ow_broker_up 1.0" in await (await http.get(f"{base}/metrics")).text()
        finally:
            if runner is not None:
                await runner.cleanup()
    print(f"readyz: 503 {to_down:.2f}s after a cut, 200 {to_up:.2f}s after restore, "
          f"503 {to_silent:.2f}s after a blackhole")
    assert to_down < 3


async def test_audit_consumer_serves_health_and_metrics(
        proxied: tuple[CuttableProxy, str]) -> None:
    proxy, url = proxied
    port = _free_port()
    async with harness(url) as h:
        await h.start_worker()
        consumer = AuditConsumer(url, MemoryStore(), prefix=h.prefix,
                                 shards=h.settings().shards)
        runner = await serve_audit_observability(consumer, port, host="127.0.0.1",
                                                 probe_interval_s=0.5)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                assert (await http.get(f"{base}/healthz")).status == 200
                assert (await http.get(f"{base}/readyz")).status == 503  # not consuming yet
                await consumer.start()
                await _until(http, f"{base}/readyz", 200, 5)
                async with h.client() as client:
                    await client.submit(place(), timeout_s=30)
                await asyncio.sleep(0.3)
                metrics = await (await http.get(f"{base}/metrics")).text()
                assert "ow_audit_events_stored_total 2.0" in metrics
                assert 'ow_build_info{python=' in metrics and 'role="audit"' in metrics
                assert "process_cpu_seconds_total" in metrics
                proxy.cut()
                await _until(http, f"{base}/readyz", 503, 5)
                proxy.restore()
                await _until(http, f"{base}/readyz", 200, 20)
                await consumer.stop()
                assert (await http.get(f"{base}/readyz")).status == 503
        finally:
            if runner is not None:
                await runner.cleanup()
