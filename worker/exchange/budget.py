"""A request budget that matches the exchange's own rate limits (replaces ccxt's limiter).

The exchange counts in fixed windows (Binance: request weight per clock minute per
IP, orders per 10 s and per day per account; Bybit: requests per second per endpoint
per account, and per 5 s per IP). ``Window`` counts the same way, so the full
capacity can be used in a burst: a call waits only when its window is spent, until
the window turns. The exchange's usage headers (``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S``, Bybit's ``X-Bapi-Limit-Status``) correct the local
count upwards: they include what every other process on the same IP (or account)
spent. A 429/418 with ``Retry-After`` stops every call on the IP until then (without
one, only the refused call backs off, through its retry policy).

Sharing: one ``IpBudget`` per exchange per worker, used by all its accounts; one
``AccountBudget`` per (account, exchange) on top of it. N workers on one IP see each
other through the headers (the IP's used weight is global), and ``share`` (the
exchange config's ``rate_share``, e.g. 1/N) caps what one worker plans to spend, so a
burst of one worker cannot starve the rest before the next header arrives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Window:
    """``limit`` units per ``period_s``, windows aligned to the epoch like the exchange's."""

    limit: float
    period_s: float
    used: float = 0.0
    start: float = 0.0

    def _roll(self, now: float) -> None:
        start = now - now % self.period_s
        if start != self.start:
            self.start, self.used = start, 0.0

    def wait_s(self, units: float, now: float) -> float:
        """0 when ``units`` fit now, else the time until this window turns."""
        self._roll(now)
        if units <= 0 or self.used + units <= self.limit or self.used == 0:
            return 0.0
        return self.start + self.period_s - now

    def take(self, units: float, now: float) -> None:
        self._roll(now)
        self.used += units

    def observe(self, used: float, now: float) -> None:
        """The exchange says ``used`` units are spent in the current window."""
        self._roll(now)
        self.used = max(self.used, used)


@dataclass
class RateSpec:
    """The documented limits of one exchange: IP windows (request weight) and account
    windows (orders), the weight of each operation, and the headers reporting usage."""

    ip_windows: Mapping[str, tuple[float, float]]
    """name -> (limit, period_s), counted in request weight."""
    order_windows: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """name -> (limit, period_s), counted in orders per account."""
    weights: Mapping[str, float] = field(default_factory=dict)
    """operation -> weight (``default_weight`` when missing)."""
    default_weight: float = 1.0
    ip_headers: Mapping[str, str] = field(default_factory=dict)
    """response header (lower case) -> IP window it reports."""
    order_headers: Mapping[str, str] = field(default_factory=dict)
    """response header (lower case) -> account order window it reports."""
    endpoint_windows: Mapping[str, str] = field(default_factory=dict)
    """URL path ending -> account order window that the endpoint's remaining-quota
    headers (``remaining_headers``) report (Bybit's per-endpoint limits)."""
    remaining_headers: tuple[str, str] = ("x-bapi-limit", "x-bapi-limit-status")
    """(limit, remaining) headers of ``endpoint_windows``."""


UNLIMITED = RateSpec(ip_windows={})


class IpBudget:
    """Request weight shared by every account of one exchange in this worker."""

    def __init__(self, spec: RateSpec, share: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.clock = clock
        self.windows = {name: Window(limit * share, period)
                        for name, (limit, period) in spec.ip_windows.items()}
        self.paused_until = 0.0
        self.requests = 0
        self.weight = 0.0
        self.waited_s = 0.0

    def weight_of(self, op: str) -> float:
        return self.spec.weights.get(op, self.spec.default_weight)

    def pause(self, seconds: float) -> None:
        """The exchange asked us to stop (429/418 Retry-After)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def on_headers(self, headers: Mapping[str, str], status: int | None) -> None:
        now = self.clock()
        for name, window in self.spec.ip_headers.items():
            value = headers.get(name)
            if value is not None and value.isdigit() and window in self.windows:
                self.windows[window].observe(float(value), now)
        retry = headers.get("retry-after", "")
        if status in (418, 429) and retry.isdigit():
            self.pause(float(retry))  # without one, the call's own retry backs off


class AccountBudget:
    """One account's order windows on top of its IP's request weight."""

    def __init__(self, ip: IpBudget) -> None:
        self.ip = ip
        self.orders = {name: Window(limit, period)
                       for name, (limit, period) in ip.spec.order_windows.items()}

    async def acquire(self, op: str, orders: int = 0) -> None:
        """Wait until ``op`` (and ``orders`` new orders) fit every window, then take."""
        ip, weight = self.ip, self.ip.weight_of(op)
        while True:
            now = ip.clock()
            wait = max(ip.paused_until - now,
                       *(w.wait_s(weight, now) for w in ip.windows.values()),
                       *(w.wait_s(orders, now) for w in self.orders.values()), 0.0)
            if wait <= 0:
                break
            ip.waited_s += wait
            await asyncio.sleep(wait + 0.001)
        for w in ip.windows.values():
            w.take(weight, now)
        for o in self.orders.values():
            o.take(orders, now)
        ip.requests += 1
        ip.weight += weight

    def on_response(self, headers: Mapping[str, str], status: int | None,
                    url: str = "") -> None:
        """Feed the exchange's usage headers (names in any case) and status."""
        lower = {k.lower(): v for k, v in headers.items()}
        spec = self.ip.spec
        self.ip.on_headers(lower, status)
        now = self.ip.clock()
        for name, window in spec.order_headers.items():
            value = lower.get(name)
            if value is not None and value.isdigit() and window in self.orders:
                self.orders[window].observe(float(value), now)
        path = url.split("?", 1)[0]
        for ending, window in spec.endpoint_windows.items():
            limit, left = (lower.get(h, "") for h in spec.remaining_headers)
            if path.endswith(ending) and limit.isdigit() and left.isdigit() \
                    and window in self.orders:
                self.orders[window].observe(float(limit) - float(left), now)
