"""Balances for the risk check without a balance call per order.

``BalanceLedger`` holds the exchange's last balance answer, moved by every order this
account placed since (fills, fees, the amount a resting order locks). It is refreshed
from the exchange in the background once older than ``refresh_s``, and fetched (the
caller waits) when there is none yet or it is older than ``4 * refresh_s``. Orders
placed while a refresh is in flight are applied again on top of its answer, so the
ledger errs towards less free balance. Fills of resting orders, cancels, transfers
and other clients' orders reach it only with the next refresh; the exchange still
refuses what the account cannot pay (InsufficientFunds -> rejected).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from worker.exchange.models import Balance, OrderState

log = logging.getLogger(__name__)

Delta = dict[str, tuple[Decimal, Decimal]]
"""asset -> (change of free, change of used)."""


def order_delta(state: OrderState, base: str, quote: str) -> Delta:
    """How a spot order just placed moves the balances: its fills and fees, and what
    its open remainder locks."""
    delta: Delta = {}

    def move(asset: str, free: Decimal, used: Decimal = Decimal(0)) -> None:
        f, u = delta.get(asset, (Decimal(0), Decimal(0)))
        delta[asset] = (f + free, u + used)

    filled, avg = state.filled, state.average or state.price or Decimal(0)
    sign = 1 if state.side == "buy" else -1
    if filled:
        move(base, sign * filled)
        move(quote, -sign * filled * avg)
    for asset, fee in (state.fees or ({state.fee_currency: state.fee}
                                      if state.fee_currency else {})).items():
        move(asset, -fee)
    if not state.is_terminal and state.remaining > 0:
        if state.side == "buy":
            lock = state.remaining * (state.price or avg)
            move(quote, -lock, lock)
        else:
            move(base, -state.remaining, state.remaining)
    return delta


class BalanceLedger:
    def __init__(self, refresh_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_s = refresh_s
        self.clock = clock
        self.balances: dict[str, Balance] | None = None
        self.at = 0.0
        self._inflight: asyncio.Task[None] | None = None
        self._since: list[Delta] | None = None
        """Deltas applied while a refresh is in flight (re-applied on its answer)."""
        self.refreshes = 0

    def apply(self, delta: Delta) -> None:
        if self.balances is not None:
            self.balances = _moved(self.balances, delta)
        if self._since is not None:
            self._since.append(delta)

    async def _run(self, fetch: Callable[[], Awaitable[dict[str, Balance]]]) -> None:
        self._since = []
        try:
            fresh = await fetch()
        except Exception as exc:
            log.warning("balance refresh failed: %r", exc)
            raise
        finally:
            since, self._since = self._since, None
        for delta in since:
            fresh = _moved(fresh, delta)
        self.balances, self.at = fresh, self.clock()
        self.refreshes += 1

    async def get(self, fetch: Callable[[], Awaitable[dict[str, Balance]]]
                  ) -> dict[str, Balance]:
        age = self.clock() - self.at
        if self.balances is None or age >= self.refresh_s:
            if self._inflight is None or self._inflight.done():
                self._inflight = asyncio.create_task(self._run(fetch))
                self._inflight.add_done_callback(_quiet)
            if self.balances is None or age >= 4 * self.refresh_s:
                await asyncio.shield(self._inflight)
        assert self.balances is not None
        return self.balances


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a failed background refresh is logged in _run


def _moved(balances: dict[str, Balance], delta: Delta) -> dict[str, Balance]:
    out = dict(balances)
    for asset, (free, used) in delta.items():
        b = out.get(asset) or Balance(asset=asset)
        f, u = b.free + free, b.used + used
        out[asset] = Balance(free=f, used=u, total=f + u, asset=asset)
    return out
