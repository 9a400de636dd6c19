"""Following one (account, exchange) over the exchange's private order stream, with
REST as the authority.

A ``StreamFeed`` runs next to the follower (``worker.orders.follow``) when the
exchange streams orders (the ``OrderStream`` port, ``"stream": true``):

* every streamed state goes through the follower's ``observe``, the code path of
  polled states, so one state gives one event id whichever way it came; stream
  updates and REST passes take turns on one lock, so they never interleave;
* a state behind what was published (fill progress going back: a duplicated or
  out-of-order message) is dropped, as is anything after the terminal state;
* a filled terminal state without fee (Binance streams only the last fill's
  commission) is looked up by REST, which gives the fee, before it is published;
* an update for an order not (yet) accepted here is parked and retried for
  ``PARK_S``;
* the follower lists open orders by REST at once after every (re)connection, break
  or unusable update, at full speed (``track_poll_s``) while the stream is down, and
  every ``stream_reconcile_s`` while it is healthy. A stalled connection is caught by
  the adapter's keepalive (``stream_silence_s``) and counts as broken.

The stream never makes the follower trust less than REST would: it only adds
earlier observations; every outcome REST would report, REST still reports.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, cast

from worker.errors import ExchangeError, PermanentError
from worker.exchange.models import OrderState
from worker.exchange.ports import Exchange, OrderStream
from worker.orders.follow import observe
from worker.orders.registry import Entry
from worker.orders.tracker import Tracker

log = logging.getLogger(__name__)
PARK_S = 30.0
"""How long an update for an order not accepted here yet is kept for a retry."""
PARK_RETRY_S = 0.1
MAX_BACKOFF_S = 30.0


def order_stream(exchange: Exchange) -> OrderStream | None:
    """The exchange's order stream when it is configured and supported, else None."""
    return cast(OrderStream, exchange) if getattr(exchange, "streams_orders", False) else None


class StreamFeed:
    def __init__(self, tracker: Tracker, exchange: Exchange, account: str, name: str) -> None:
        self.tracker, self.exchange = tracker, exchange
        self.stream = cast(OrderStream, exchange)
        self.account, self.name = account, name
        self.lock = asyncio.Lock()
        """Held by a REST pass and by the application of a stream batch."""
        self.healthy = False
        self.reconcile_asked_at = time.monotonic()
        """When a REST reconcile was last asked for; a pass started later settles it."""
        self.reconciled_at = 0.0
        self.wake = asyncio.Event()
        self.parked: dict[str, tuple[OrderState, float]] = {}
        self.counts: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    # -- the follower's side -------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream:{self.account}:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.stream.stop_stream()

    def full_pass_due(self) -> bool:
        """Whether the follower's next pass must list open orders by REST."""
        interval = self.tracker.settings.stream_reconcile_s
        return (not self.healthy or self.reconcile_asked_at >= self.reconciled_at
                or time.monotonic() - self.reconciled_at >= interval)

    def reconciled(self, started_at: float) -> None:
        """A full REST pass that started at ``started_at`` (monotonic) is done."""
        self.reconciled_at = max(self.reconciled_at, started_at)

    async def sleep(self, seconds: float, *, backing_off: bool = False) -> None:
        """Sleep until the next pass; cut short when a reconcile is asked for (unless the
        follower backs off after failed passes)."""
        self.wake.clear()
        if backing_off:
            await asyncio.sleep(seconds)
            return
        if self.reconcile_asked_at >= self.reconciled_at:
            return
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    def ask_reconcile(self, why: str) -> None:
        self.reconcile_asked_at = time.monotonic()
        self._count(why)
        self.tracker.metrics.reconciliations.labels(why).inc()
        self.wake.set()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # -- the stream's side ---------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.0
        while True:
            try:
                batch = await asyncio.wait_for(self.stream.watch_orders(),
                                               PARK_RETRY_S if self.parked else None)
            except TimeoutError:
                try:
                    await self._retry_parked()
                except Exception:
                    log.exception("retrying parked stream updates failed")
                    self.ask_reconcile("stream_update_failed")
                continue
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                self.healthy = False
                self.ask_reconcile("stream_broke")
                backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF_S)
                if isinstance(exc, PermanentError):
                    backoff = max(backoff, 5.0)
                log.warning("order stream %s:%s broke: %r; REST follows meanwhile",
                            self.account, self.name, exc)
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                continue
            except Exception:
                self.healthy = False
                self.ask_reconcile("stream_broke")
                log.exception("order stream %s:%s failed", self.account, self.name)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                self.healthy, backoff = True, 0.0
                self.ask_reconcile("stream_connected")
                continue
            try:
                async with self.lock:
                    for state in batch:
                        await self._apply(state)
                if self.parked:
                    await self._retry_parked()
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. the broker refused a publish: REST catches up
                log.exception("applying streamed orders of %s:%s failed", self.account,
                              self.name)
                self.ask_reconcile("stream_update_failed")

    async def _apply(self, state: OrderState) -> None:
        self._count("updates")
        cid = state.client_order_id or ""
        entry = self.tracker.get(cid)
        if entry is not None and (entry.ref.account, entry.ref.exchange) != (self.account,
                                                                            self.name):
            self._count("other_account")  # two accounts on one key: its own feed has it
            return
        if entry is None or not entry.accepted.is_set() or entry.phase != "open" \
                or entry.order_id is None:
            if entry is not None and entry.terminal:
                self._count("after_terminal")
                return
            have = self.parked.get(cid)
            if have is None or have[0].filled <= state.filled or state.is_terminal:
                self.parked[cid] = (state, have[1] if have else time.monotonic())
            return
        await self._observe(entry, state)

    async def _observe(self, entry: Entry, state: OrderState) -> None:
        if entry.terminal:
            self._count("after_terminal")
            return
        if state.id != entry.order_id:
            self._count("other_order")
            return
        published = entry.published_filled
        if published is not None and state.filled < published:
            self._count("stale")  # out of order or duplicated: a newer state is out
            return
        if state.is_terminal and state.filled > 0 and not state.fees:
            try:  # the fee of a filled order: REST (Binance sums it from the trades)
                state = await self.exchange.get_order(entry.ref.symbol, state.id)
            except ExchangeError as exc:
                log.info("terminal state needs REST: %r", exc,
                         extra={"client_order_id": entry.ref.client_order_id})
                self.ask_reconcile("stream_needs_rest")
                return
        await observe(self.tracker, entry, state)

    async def _retry_parked(self) -> None:
        now = time.monotonic()
        async with self.lock:
            for cid, (state, since) in list(self.parked.items()):
                entry = self.tracker.get(cid)
                if entry is not None and (entry.terminal or entry.ref.account != self.account):
                    del self.parked[cid]
                elif entry is not None and entry.accepted.is_set() and entry.order_id:
                    del self.parked[cid]
                    await self._observe(entry, state)
                elif now - since > PARK_S:
                    del self.parked[cid]
                    if cid.startswith("ow-"):
                        self.ask_reconcile("stream_update_unused")

    def stats(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "parked": len(self.parked), **self.counts}
