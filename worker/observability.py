"""HTTP endpoints: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).

Readiness tells the truth about the broker: a robust connection never reports
itself closed while it reconnects, so ``BrokerProbe`` looks at the live
transport on every request and, every ``interval_s``, opens and closes a
channel (one round trip, catching a silent network within
``interval_s + timeout_s``). It also drives the ``ow_broker_up`` gauge.
Probe requests are logged at DEBUG, everything else at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractConnection
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

if TYPE_CHECKING:
    from worker.app import Worker
    from worker.audit.consumer import AuditConsumer

log = logging.getLogger(__name__)
PROBES = ("/healthz", "/readyz", "/metrics")


def connected(conn: AbstractConnection | None) -> bool:
    """The connection has a live transport right now (robust ones included)."""
    if conn is None or conn.is_closed:
        return False
    transport: Any = getattr(conn, "transport", None)
    event: Any = getattr(conn, "connected", None)
    if event is not None and not event.is_set():
        return False
    return transport is not None and not transport.connection.is_closed


class BrokerProbe:
    """Is the broker reachable now? See the module docstring."""

    def __init__(self, get_conn: Callable[[], AbstractConnection | None], gauge: Gauge | None,
                 interval_s: float = 2.0, timeout_s: float = 2.0) -> None:
        self.get_conn, self.gauge = get_conn, gauge
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.answered: bool | None = None  # None until the first round trip
        self._task: asyncio.Task[None] | None = None

    def up(self) -> bool:
        ok = self.answered is not False and connected(self.get_conn())
        if self.gauge is not None:
            self.gauge.set(int(ok))
        return ok

    async def round_trip(self) -> bool:
        conn = self.get_conn()
        if not connected(conn):
            return False
        transport: Any = getattr(conn, "transport", None)
        try:
            channel = await asyncio.wait_for(transport.connection.channel(), self.timeout_s)
            await asyncio.wait_for(channel.close(), self.timeout_s)
        except Exception as exc:  # any failure means "not answering", never a crash
            log.debug("broker probe failed: %r", exc)
            return False
        return True

    async def _loop(self) -> None:
        while True:
            self.answered = await self.round_trip()
            self.up()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class QuietProbeLogger(AbstractAccessLogger):
    """Access log: probes at DEBUG, other requests at INFO."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = logging.DEBUG if request.path in PROBES else logging.INFO
        self.logger.log(level, "%s %s %s %.1f ms", request.method, request.path,
                        response.status, time * 1000)


async def serve(port: int, registry: CollectorRegistry, ready: Callable[[], bool],
                probe: BrokerProbe, host: str = "0.0.0.0") -> web.AppRunner | None:
    """Serve the three endpoints on ``port`` (0: off) while ``probe`` runs."""
    if port <= 0:
        return None

    async def metrics(_: web.Request) -> web.Response:
        probe.up()
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        broker = probe.up()
        ok = broker and ready()
        return web.json_response({"ready": ok, "broker": broker}, status=200 if ok else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz),
                    web.get("/readyz", readyz)])

    async def stop_probe(_: web.Application) -> None:
        await probe.stop()

    app.on_cleanup.append(stop_probe)
    runner = web.AppRunner(app, access_log_class=QuietProbeLogger)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    probe.start()
    return runner


async def serve_observability(worker: Worker, port: int, host: str = "0.0.0.0",
                              probe_interval_s: float = 2.0) -> web.AppRunner | None:
    """The worker's endpoints: ready while started, not draining, and the broker answers."""
    probe = BrokerProbe(lambda: worker.connection, worker.metrics.broker_up, probe_interval_s)
    return await serve(port, worker.metrics.registry, lambda: worker.ready, probe, host)


async def serve_audit_observability(consumer: AuditConsumer, port: int, host: str = "0.0.0.0",
                                    probe_interval_s: float = 2.0) -> web.AppRunner | None:
    """The audit consumer's endpoints: ready while consuming and the broker answers."""
    probe = BrokerProbe(lambda: consumer.connection, consumer.metrics.broker_up,
                        probe_interval_s)
    return await serve(port, consumer.metrics.registry, lambda: consumer.consuming, probe, host)
