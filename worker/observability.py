"""HTTP endpoints: /metrics (Prometheus), /healthz (liveness), /readyz (readiness)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from worker.app import Worker


async def serve_observability(worker: Worker, port: int,
                              host: str = "0.0.0.0") -> web.AppRunner | None:
    """Start the endpoints on ``port``; 0 disables them."""
    if port <= 0:
        return None

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(worker.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        conn = worker.connection
        ready = worker.ready and conn is not None and not conn.is_closed
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/healthz", healthz),
                    web.get("/readyz", readyz)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
