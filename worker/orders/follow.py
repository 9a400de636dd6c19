"""Following one (account, exchange): batched status polling for all its tracked orders.

Per interval: one open-orders call per symbol with tracked orders (so requests
grow with symbols, never with orders), an individual lookup only for an order
that left the open list, lookups by client order id for *pending* placements,
and the cancels that are due (timeout_s or a CancelOrder).

Failure handling, per order so one bad order never stalls the others:
* transient errors: try again next round, with the account's poll backing off;
* the order cannot be followed (auth revoked, order invisible for long): an
  ``order_tracking_stalled`` alert once, and keep trying; never a made-up outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable
from decimal import Decimal, InvalidOperation

from schemas import OrderFailed, RejectReason, client_order_id
from worker.errors import (
    ExchangeError,
    InvalidOrder,
    OrderNotFound,
    PermanentError,
    TransientError,
)
from worker.exchange.models import OrderState
from worker.exchange.ports import Exchange
from worker.orders.events import OrderRef, accepted, cancel_done, progress, refusal, stalled
from worker.orders.outcomes import keep_s
from worker.orders.registry import Entry
from worker.orders.tracker import Tracker

log = logging.getLogger(__name__)
STALL_AFTER_MISSES = 8
MAX_BACKOFF_S = 30.0


def cancel_ref(entry: Entry, cancel_command_id: str) -> OrderRef:
    r = entry.ref
    return OrderRef(command_id=cancel_command_id, account=r.account, exchange=r.exchange,
                    symbol=r.symbol, client_order_id=client_order_id(r.account,
                                                                     cancel_command_id))


async def observe(tracker: Tracker, entry: Entry, state: OrderState) -> None:
    """Publish what is new in ``state``; finish the entry when it is terminal."""
    if entry.terminal:
        return
    entry.misses = 0
    entry.last_seen = (state.status, state.filled)
    event = progress(entry.ref, state)
    if state.is_terminal:
        events = [event] if event is not None else []
        events += [cancel_done(cancel_ref(entry, c), entry.ref, state)
                   for c in entry.cancel_commands]
        await tracker.publisher.publish(events)
        tracker.finish(entry, state)
    elif event is not None and state.filled != entry.published_filled:
        await tracker.publisher.publish([event])
        entry.published_filled = state.filled


def _cancel_wanted(entry: Entry, now: float) -> bool:
    return entry.cancel_requested or (entry.deadline_at is not None and now >= entry.deadline_at)


async def cancel_if_due(tracker: Tracker, exchange: Exchange, entry: Entry) -> None:
    """Send the cancel a timeout or a CancelOrder asked for; again if it seems lost."""
    now = time.time()
    due = _cancel_wanted(entry, now)
    resend = now - entry.cancel_sent_at > tracker.settings.cancel_confirm_s
    if not due or entry.order_id is None or (entry.cancel_sent_at and not resend):
        return
    entry.cancel_sent_at = now
    try:
        state = await exchange.cancel_order(entry.ref.symbol, entry.order_id)
    except (OrderNotFound, InvalidOrder):
        return  # already gone (filled or canceled): polling tells which
    await observe(tracker, entry, state)


async def resolve_pending(tracker: Tracker, exchange: Exchange, entry: Entry) -> None:
    """Found -> accepted and followed; confirmed absent -> OrderFailed(not_placed)."""
    if time.monotonic() < entry.next_lookup_at:
        return
    found = await exchange.find_order(entry.ref.symbol, entry.ref.client_order_id)
    if found is not None:
        entry.phase, entry.order_id = "open", found.id
        entry.placed_at = found.timestamp_ms / 1000 if found.timestamp_ms else time.time()
        entry.side, entry.type, entry.amount = found.side, found.type, str(found.amount)
        try:
            await tracker.persist([entry], [accepted(entry.ref, found)])
        except BaseException:
            # not confirmed: still pending (polling skips an open entry not yet accepted)
            entry.phase, entry.order_id = "pending", None
            raise
        entry.accepted.set()
        tracker.metrics.reconciliations.labels("pending_found").inc()
        await observe(tracker, entry, found)
        return
    if not entry.durable:
        # its record was never confirmed, so its command was not acked: whoever holds the
        # command now (maybe another worker, maybe placing it) decides, not this tracker
        return
    s = tracker.settings
    trust_at = (entry.sent_before or 0) + exchange.settle_s + s.fence_s + s.max_clock_skew_s
    wait = trust_at - time.time()
    if wait > 0:
        entry.next_lookup_at = time.monotonic() + min(wait + 0.05, max(s.track_poll_s, 1.0))
        return
    failed = refusal(OrderFailed, entry.ref, RejectReason.NOT_PLACED,
                     "the exchange confirmed no order with this client order id after "
                     "every earlier request expired", amount=_dec(entry.amount),
                     side=entry.side, order_type=entry.type)
    events = [failed, *(cancel_done(cancel_ref(entry, c), entry.ref, None)
                        for c in entry.cancel_commands)]
    # remembered with it (worker.orders.outcomes): a copy of the command arriving after
    # the entry would have been forgotten repeats it, and never places the order
    entry.phase, entry.outcome, entry.expires_at = "done", failed, time.time() + keep_s(s)
    try:
        await tracker.persist([entry], events)
    except BaseException:
        entry.phase, entry.outcome, entry.expires_at = "pending", None, None  # try again
        raise
    tracker.finish(entry, None)
    tracker.metrics.reconciliations.labels("pending_absent").inc()


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


async def _alert(tracker: Tracker, entry: Entry, reason: RejectReason, exc: Exception) -> None:
    if entry.stalled:
        return
    entry.stalled = True
    log.error("order cannot be followed right now: %s", exc,
              extra={"client_order_id": entry.ref.client_order_id})
    tracker.metrics.reconciliations.labels("stalled").inc()
    await tracker.publisher.publish([stalled(entry.ref, reason, str(exc))])


async def poll_once(tracker: Tracker, exchange: Exchange, account: str, name: str, *,
                    full: bool = True) -> None:
    """One pass. ``full=False`` (an order stream is healthy): only due cancels and
    pending lookups, no open-orders listing."""
    entries = tracker.live_entries(account, name)
    by_symbol: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        if e.phase == "open" and e.order_id is not None and e.accepted.is_set():
            by_symbol[e.ref.symbol].append(e)
    now = time.time()
    for symbol, group in by_symbol.items():
        if not full:
            for e in group:
                await _step(tracker, e, cancel_if_due(tracker, exchange, e))
            continue
        listed = {o.id: o for o in await exchange.get_open_orders(symbol)}
        for i, e in enumerate(group):
            state = listed.get(e.order_id or "")
            if state is not None and (state.status, state.filled) == e.last_seen \
                    and not _cancel_wanted(e, now):
                e.misses = 0
                continue  # resting as before: nothing to publish, nothing to send
            await _step(tracker, e, _poll_entry(tracker, exchange, e, state))
            if i % 100 == 99:
                await asyncio.sleep(0)  # a long pass must not hold up commands
    for e in entries:
        if e.phase == "pending":
            await _step(tracker, e, resolve_pending(tracker, exchange, e))


async def _poll_entry(tracker: Tracker, exchange: Exchange, e: Entry,
                      listed: OrderState | None) -> None:
    state = listed
    if state is None:  # left the open list (or not in it yet): ask for this one
        assert e.order_id is not None
        try:
            state = await exchange.get_order(e.ref.symbol, e.order_id)
        except OrderNotFound as exc:
            e.misses += 1  # a just-created order can be briefly invisible
            if e.misses >= STALL_AFTER_MISSES:
                await _alert(tracker, e, RejectReason.UNFOLLOWABLE, exc)
            return
    await observe(tracker, e, state)
    if not e.terminal:
        await cancel_if_due(tracker, exchange, e)


async def _step(tracker: Tracker, e: Entry, work: Awaitable[None]) -> None:
    try:
        await work
    except TransientError as exc:
        log.warning("order poll failed: %r", exc,
                    extra={"client_order_id": e.ref.client_order_id})
    except PermanentError as exc:
        await _alert(tracker, e, exc.reason, exc)


async def follow_account(tracker: Tracker, account: str, name: str) -> None:
    """Poll until no live order of (account, exchange) is left; never gives up on one.
    With an order stream (worker.orders.stream) the open-orders listing slows down
    while the stream is healthy."""
    from worker.orders.stream import StreamFeed, order_stream

    s = tracker.settings
    backoff = 0.0
    feed: StreamFeed | None = None
    try:
        while True:
            if not tracker.live_entries(account, name) and tracker.follower_done(account, name):
                return
            if feed is None:
                await asyncio.sleep(s.track_poll_s + backoff)
            else:
                await feed.sleep(s.track_poll_s + backoff, backing_off=backoff > 0)
            try:
                exchange = await tracker.exchanges.get(account, name)
                if feed is None and order_stream(exchange) is not None:
                    feed = StreamFeed(tracker, exchange, account, name)
                    feed.start()
                if feed is None:
                    await poll_once(tracker, exchange, account, name)
                else:
                    full = feed.full_pass_due()
                    async with feed.lock:
                        started = time.monotonic()
                        await poll_once(tracker, exchange, account, name, full=full)
                    if full:
                        feed.reconciled(started)
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                backoff = min(max(backoff * 2, s.track_poll_s), MAX_BACKOFF_S)
                log.warning("following %s:%s failed: %r", account, name, exc)
                if isinstance(exc, PermanentError):
                    for e in tracker.live_entries(account, name):
                        await _alert(tracker, e, exc.reason, exc)
            except Exception:
                backoff = min(max(backoff * 2, s.track_poll_s), MAX_BACKOFF_S)
                log.exception("following %s:%s failed", account, name)
    finally:
        if feed is not None:
            await feed.stop()
