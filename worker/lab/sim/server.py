"""What every exchange simulator shares: the aiohttp server's life, request counting,
injected faults around a handler, and the admin API (/_admin/faults,
/_admin/stream_faults, /_admin/stats).

A subclass names its routes, how it groups requests for fault rules, how it answers
an injected fault and its own errors, and which paper books it holds.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from aiohttp import web

from worker.exchange.paper import PaperExchange
from worker.lab.sim.faults import FaultPlan, answer_then_process
from worker.settings import ExchangeConfig


class SimError(Exception):
    """An error the simulated exchange answers in its own format (see ``error_answer``)."""


def paper_config(fill_ratio: str, balances: dict[str, Decimal] | None) -> ExchangeConfig:
    return ExchangeConfig(paper_fill_ratio=Decimal(fill_ratio),
                          paper_balances=balances or {"USDT": Decimal("100000000"),
                                                      "BTC": Decimal("1000")})


class SimServer:
    name = "exchange"
    unmetered: tuple[str, ...] = ("/_admin",)
    """Path prefixes neither counted nor faulted (admin calls, streams)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.faults = FaultPlan()
        self.clock_offset_ms = 0
        """The exchange's clock minus real time (negative: it runs behind the worker's)."""
        self._late: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.by_endpoint: dict[str, int] = {}
        """Requests per ``METHOD /path`` (admin calls and streams excluded)."""
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.streams: Any = None

    # -- for subclasses -------------------------------------------------------------
    def routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def group(self, request: web.Request) -> str:
        """The fault group of a request: create, cancel, query, account or market."""
        raise NotImplementedError

    def fault_answer(self, kind: str) -> web.StreamResponse:
        """The answer to an injected 500, 503, 429, unknown, 500_after or unknown_after."""
        raise NotImplementedError

    def error_answer(self, exc: SimError) -> web.StreamResponse:
        raise NotImplementedError

    def all_books(self) -> Iterator[PaperExchange]:
        raise NotImplementedError

    def admin_extra(self, body: dict[str, Any]) -> None:
        """Further fields of a POST /_admin/faults body."""

    def stats_extra(self) -> dict[str, Any]:
        return {}

    # -- plumbing ---------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app.router)
        app.router.add_post("/_admin/faults", self.set_faults)
        app.router.add_post("/_admin/stream_faults", self.set_stream_faults)
        app.router.add_get("/_admin/stats", self.stats)
        return app

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self.streams is not None:
            await self.streams.hub.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(self.unmetered):
            return await handler(request)  # type: ignore[no-any-return]
        self.requests += 1
        endpoint = f"{request.method} {request.path}"
        self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
        return await self.answer(request, handler)

    async def answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A counted request's answer: through the fault plan (a subclass may add limits)."""
        return await self.with_faults(request, handler)

    async def with_faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fault = self.faults.pick(self.group(request))
        kind = fault.kind if fault else None
        if kind in ("500", "503", "429", "unknown"):
            return self.fault_answer(kind or "")
        if kind == "unknown_late" and fault:
            await request.read()
            answer_then_process(request, handler, fault.delay_s, self._late)
            return self.fault_answer("unknown")
        if kind == "reset":
            drop(request)
            raise web.HTTPServiceUnavailable()
        if kind == "latency" and fault:
            await request.read()  # the exchange has the request; it survives a disconnect
            await asyncio.sleep(fault.delay_s)
        try:
            response: web.StreamResponse = await handler(request)
        except SimError as exc:
            response = self.error_answer(exc)
        if kind in ("500_after", "unknown_after"):
            return self.fault_answer(kind or "")
        if kind == "accept_drop":
            drop(request)
            raise web.HTTPServiceUnavailable()
        return response

    # -- admin and lab views ----------------------------------------------------------
    async def set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.faults.set(body.get("rules", []), body.get("seed"))
        if "clock_offset_ms" in body:
            self.clock_offset_ms = int(body["clock_offset_ms"])
        self.admin_extra(body)
        return web.json_response({"ok": True})

    async def set_stream_faults(self, request: web.Request) -> web.Response:
        """Stream faults (see worker.lab.sim.streams)."""
        self.streams.hub.set_faults(await request.json())
        return web.json_response({"ok": True})

    def move_price(self, symbol: str, price: Decimal) -> None:
        """Moves the price of every book there (the random walk goes on from it);
        resting limits that cross fill."""
        for book in self.all_books():
            line = book._book(symbol)  # the paper book's internals: lab code only
            line.price = price
            book._match(line)

    def orders_per_client_id(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for book in self.all_books():
            for order in book._orders.values():
                cid = order.req.client_order_id
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "by_endpoint": self.by_endpoint,
                                  **self.stats_extra(),
                                  "injected": self.faults.injected,
                                  "streams": self.streams.hub.stats(),
                                  "orders_per_client_id": self.orders_per_client_id()})


def drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def serve_main(doc: str | None, default_port: int,
               build: Callable[[argparse.Namespace, dict[str, str]], SimServer],
               extra: Callable[[argparse.ArgumentParser], object] = lambda _: None) -> None:
    """The command line of a simulator: ``--port``, ``--key``/``--secret`` pairs,
    ``--fill-ratio`` and whatever ``extra`` adds; serves until killed."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--key", action="append", default=[])
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--fill-ratio", default="1")
    extra(parser)
    args = parser.parse_args()
    sim = build(args, dict(zip(args.key, args.secret, strict=True)))

    async def serve() -> None:
        url = await sim.start(args.port)
        print(f"{sim.name} simulator on {url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())
