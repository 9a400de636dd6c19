"""What the accounts of one exchange share inside one worker: the IP's request budget,
the loaded markets (one exchangeInfo call, not one per account) and a ticker cache.

``TickerCache`` keeps the last price of every symbol the risk checks asked for, fed by
one batched call (``fetch_tickers``) for all of them: a price younger than
``refresh_s`` is used as is; an older one is used while a refresh runs in the
background, up to ``max_age_s``; beyond that the caller waits for the refresh, and
gets the price with its age, so price protection can refuse a price that is too old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

from worker.exchange.budget import IpBudget, RateSpec

log = logging.getLogger(__name__)

Fetch = Callable[[list[str]], Awaitable[dict[str, Decimal]]]


class TickerCache:
    def __init__(self, refresh_s: float = 1.0, forget_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.forget_s = forget_s
        self.clock = clock
        self.prices: dict[str, tuple[Decimal, float]] = {}
        self.wanted: dict[str, float] = {}
        """symbol -> when a caller last asked for it."""
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0
        self.error: Exception | None = None
        """Why the last refresh failed (None: it succeeded)."""

    def _refresh(self, fetch: Fetch) -> asyncio.Task[None]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._run(fetch))
        return self._inflight

    async def _run(self, fetch: Fetch) -> None:
        now = self.clock()
        symbols = sorted(s for s, at in self.wanted.items() if now - at < self.forget_s)
        self.wanted = {s: self.wanted[s] for s in symbols}
        try:
            got = await fetch(symbols)
        except Exception as exc:  # the caller sees an old price or none; never a wrong one
            log.warning("ticker refresh failed: %r", exc)
            self.error = exc
            return
        self.fetches, self.error = self.fetches + 1, None
        at = self.clock()
        for symbol, price in got.items():
            self.prices[symbol] = (price, at)

    async def price(self, symbol: str, fetch: Fetch, max_age_s: float
                    ) -> tuple[Decimal | None, float]:
        """(price, age in seconds); (None, inf) when no price could be had."""
        now = self.clock()
        self.wanted[symbol] = now
        cached = self.prices.get(symbol)
        age = now - cached[1] if cached else float("inf")
        if age >= self.refresh_s:
            task = self._refresh(fetch)
            if age > max_age_s:
                await asyncio.shield(task)
                cached = self.prices.get(symbol)
                age = self.clock() - cached[1] if cached else float("inf")
        return (cached[0] if cached else None), age


class Venue:
    """Shared state of one exchange (by config name) in this worker."""

    def __init__(self, spec: RateSpec, *, share: float = 1.0,
                 ticker_refresh_s: float = 1.0) -> None:
        self.budget = IpBudget(spec, share)
        self.tickers = TickerCache(ticker_refresh_s)
        self.markets: tuple[Any, Any] | None = None
        """(markets, currencies) as the first account's client loaded them."""
        self.markets_lock = asyncio.Lock()


def pick_prices(raw: dict[str, Any], symbols: Iterable[str]) -> dict[str, Decimal]:
    """Last prices out of a ccxt ``fetch_tickers`` answer (mid price when no last)."""
    out: dict[str, Decimal] = {}
    for symbol in symbols:
        t = raw.get(symbol) or {}
        price = t.get("last") or t.get("close")
        if price is None and t.get("bid") and t.get("ask"):
            price = (Decimal(str(t["bid"])) + Decimal(str(t["ask"]))) / 2
        if price is not None:
            out[symbol] = Decimal(str(price))
    return out
