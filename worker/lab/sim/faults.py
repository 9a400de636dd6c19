"""Fault injection for the exchange simulator.

A rule names an endpoint group (create, cancel, query, market, account, any),
a kind, and either a probability (``rate``) or a number of next matching
requests (``count``). Kinds:

    500          HTTP 500 {"code":-1001}; not processed
    500_after    processed, then HTTP 500 (Binance: "execution status unknown")
    503          HTTP 503; not processed
    429          HTTP 429; not processed
    reset        connection dropped; not processed
    accept_drop  processed, then the connection is dropped before the response
    latency      processed after ``delay_s`` (beyond the client timeout)
    unknown      not processed, yet answered with the exchange's "execution status
                 unknown" code (Binance -1007, Bybit 10016)
    unknown_after processed, then answered with that code
    unknown_late answered with that code at once, processed ``delay_s`` later (the
                 exchange's own recvWindow check then decides whether it executes)

Each simulator also takes a clock offset (``clock_offset_ms`` in /_admin/faults):
its clock runs that far ahead of real time (negative: behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

KINDS = ("500", "500_after", "503", "429", "reset", "accept_drop", "latency", "unknown",
         "unknown_after", "unknown_late")
GROUPS = ("create", "cancel", "query", "market", "account", "any")


async def process_late(request: web.Request, handler: Any, delay_s: float) -> None:
    """Run ``handler`` on an already answered request after ``delay_s`` (body cached)."""
    await asyncio.sleep(delay_s)
    with contextlib.suppress(Exception):
        await handler(request)


def answer_then_process(request: web.Request, handler: Any, delay_s: float,
                        tasks: set[asyncio.Task[None]]) -> None:
    task = asyncio.create_task(process_late(request, handler, delay_s))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


@dataclass
class FaultRule:
    kind: str
    group: str = "any"
    rate: float = 0.0
    count: int = 0
    delay_s: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.group not in GROUPS:
            raise ValueError(f"bad fault rule {self.kind}/{self.group}")


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 1
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def set(self, rules: list[dict[str, Any]], seed: int | None = None) -> None:
        self.rules = [FaultRule(**r) for r in rules]
        if seed is not None:
            self._rng = random.Random(seed)

    def pick(self, group: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.group not in (group, "any"):
                continue
            if rule.count > 0:
                rule.count -= 1
                return self._hit(rule)
            if rule.rate > 0 and self._rng.random() < rule.rate:
                return self._hit(rule)
        return None

    def _hit(self, rule: FaultRule) -> FaultRule:
        key = f"{rule.group}:{rule.kind}"
        self.injected[key] = self.injected.get(key, 0) + 1
        return rule
