"""CancelOrder and CancelAll: run in the account's turn, after every earlier command of
the account, and end with an outcome event under the cancel's own command_id.

CancelOrder, by what the registry knows of the target:
* open      -> cancel on the exchange; terminal at once -> the target's terminal event and
               ``cancel_done`` (its status tells whether a fill won the race); otherwise the
               cancel joins the order's record and the tracker publishes ``cancel_done``
               when the exchange reports the order terminal;
* pending   -> the cancel joins the record; the tracker cancels the order if it turns up,
               or reports ``cancel_done(not_placed)``;
* terminal  -> ``cancel_done`` with the final status;
* unknown   -> look it up on the exchange (after the shard's registry is complete); found
               -> as open; absent -> ``cancel_rejected(order_not_found)`` and a *tombstone*:
               the target's PlaceOrder, should it still arrive, is never placed.

Every outcome the handler publishes is remembered first (worker.orders.outcomes): a copy
of the CancelOrder repeats it instead of deciding afresh.

A copy without a symbol is deferred rather than answer "not found". Without a symbol only
the account's open orders can be listed, so a copy whose first handling canceled the
target (or saw it fill) and then died before its ack would miss it; and the outcome that
handling remembered, or the target's record, may still be behind the shard's command
backlog on a worker that just took the shard over (chaos: 2-3 cancels per 3000-order run
got a second outcome). Deferred, a confirmed copy goes round the shard's carousel and
comes back, as a redelivery, behind every record on its way now; at most
``MAX_DEFERRALS`` times, then it decides. It leaves a tombstone (without an outcome)
before it goes: the account's later commands may overtake it meanwhile, the target's own
PlaceOrder among them, which the first handling may have promised never to place.

Fencing "not found" (issue 10 #2). A partitioned worker's cancel handler can outlive its
hold on the command: resumed after the broker redelivered the shard's commands, its
lookup finds nothing because the target's PlaceOrder now sits with the new holder, which
places it. So "absent" may only be concluded while this worker still holds the shard:
after the last lookup found nothing (at L), a broker round trip on the channel the
cancel came on must start at some T >= L and succeed (``delivery.fence``, the creates'
fence: worker.broker.fence); if it fails, the handler publishes nothing and leaves the
delivery to the broker, and the new holder decides. Why it holds: the shard queue has a
single active consumer and the broker moves it (and redelivers) only after closing this
channel, which was still open when it answered at T, so every other holder of the
target's PlaceOrder got it at R > T >= L. The tombstone and the event go out right after
T; a redelivered PlaceOrder creates only after R + ``fence_s`` + the settle window and a
last registry check, by which time the tombstone's record has come round, provided one
``track_cycle_s`` is no longer than ``fence_s`` + the settle window (10 s vs 11 s at
Binance defaults; the README's known limits say what is left); the CancelOrder's copy
repeats the remembered outcome. Earlier holders of the PlaceOrder are covered by the wait
until received + settle + fence_s before the last lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

import msgspec

from schemas import CancelAll, CancelOrder, RejectReason, client_order_id
from schemas.ids import CLIENT_ID_PREFIX
from worker.errors import ExchangeError, FenceLost, InvalidOrder, OrderNotFound
from worker.exchange.models import OrderState
from worker.exchange.ports import Exchange
from worker.exchange.retry import call_with_retry
from worker.orders.events import (
    OrderRef,
    accepted,
    cancel_all_done,
    cancel_done,
    cancel_rejected,
    progress,
    ref_of,
)
from worker.orders.outcomes import answer, keep_s, repeat
from worker.orders.place import facts_since, find
from worker.orders.registry import Entry
from worker.policy import retry_policy
from worker.ports import ACK, DEFER, RETRY, Delivery, Deps, Outcome

ACCEPT_WAIT_S = 30.0
MAX_DEFERRALS = 3
log = logging.getLogger(__name__)


async def _cancel_on_exchange(deps: Deps, exchange: Exchange, entry: Entry) -> OrderState:
    assert entry.order_id is not None
    policy, hook = retry_policy(deps.settings), deps.metrics.on_retry
    symbol, oid = entry.ref.symbol, entry.order_id
    entry.cancel_sent_at = time.time()
    try:
        return await call_with_retry(policy, "cancel_order",
                                     partial(exchange.cancel_order, symbol, oid), hook)
    except (OrderNotFound, InvalidOrder):  # gone already: filled or canceled, ask which
        return await call_with_retry(policy, "get_order",
                                     partial(exchange.get_order, symbol, oid), hook)


async def _cancel_entry(deps: Deps, cancel: OrderRef | None, entry: Entry,
                        exchange: Exchange) -> None:
    """Cancel one followed order; ``cancel`` (a CancelOrder) gets ``cancel_done``."""
    if cancel is not None and entry.ref.symbol and cancel.symbol != entry.ref.symbol:
        # the target's symbol, as the tracker's cancel_done for it has (one state, one id)
        cancel = msgspec.structs.replace(cancel, symbol=entry.ref.symbol)
    entry.cancel_requested = True
    if cancel is not None and cancel.command_id not in entry.cancel_commands:
        entry.cancel_commands.append(cancel.command_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(entry.accepted.wait(), ACCEPT_WAIT_S)
    tracker = deps.tracker
    if entry.terminal:  # it ended while we waited (e.g. its placement found it filled)
        if cancel is not None:
            await answer(deps, cancel, cancel_done(cancel, entry.ref, entry.final))
        return
    try:
        state = await _cancel_on_exchange(deps, exchange, entry)
    except ExchangeError as exc:
        if cancel is None:
            raise
        # The cancel has joined the order: the tracker keeps sending it and reports
        # cancel_done once the order ends. A cancel_rejected now would be its second outcome.
        log.warning("cancel not confirmed yet, the tracker retries it: %s", exc,
                    extra={"client_order_id": entry.ref.client_order_id})
        await tracker.persist([entry])
        if entry.terminal:
            await answer(deps, cancel, cancel_done(cancel, entry.ref, entry.final))
        return
    if entry.terminal and cancel is not None:
        # the follower saw it end meanwhile; its batch may have been built before we joined,
        # so say it again: same id, same (the entry's final) state
        await answer(deps, cancel, cancel_done(cancel, entry.ref, entry.final))
        return
    if state.is_terminal or entry.terminal:
        final = state if state.is_terminal else entry.final
        event = progress(entry.ref, state) if state.is_terminal else None
        also = [event] if event else []
        if cancel is not None:
            await answer(deps, cancel, cancel_done(cancel, entry.ref, final), also)
        else:
            await deps.publisher.publish(also)
        if not entry.terminal:
            tracker.finish(entry, state)
        return
    await tracker.persist([entry])  # the tracker reports cancel_done once it is terminal


async def handle_cancel(cmd: CancelOrder, deps: Deps, delivery: Delivery) -> Outcome:
    tracker = deps.tracker
    target_cid = client_order_id(cmd.account, cmd.target_command_id)
    copy = delivery.copy
    async with delivery.turn:
        await tracker.recall(delivery.shard, facts_since(tracker, delivery))
        entry = tracker.get(target_cid)
        cold = tracker.warmth.warm_in(delivery.shard)
        if (entry is None or entry.phase == "tombstone" or copy) and cold > 0:
            # a record of the target, or of this cancel's outcome, may still be on its way
            await asyncio.sleep(cold)
            entry = tracker.get(target_cid)
        if await repeat(deps, ref_of(cmd).client_order_id):
            return ACK  # a copy: its outcome is decided and remembered
        symbol = entry.ref.symbol if entry is not None and entry.ref.symbol else cmd.symbol
        cancel = ref_of(cmd, symbol=symbol)
        target = ref_of(cmd, symbol=symbol, command_id=cmd.target_command_id)
        exchange = await deps.exchanges.get(cmd.account, cmd.exchange)
        if entry is not None and (entry.terminal or entry.phase == "done"):
            # ended, or never placed (its PlaceOrder was refused): final None
            await answer(deps, cancel, cancel_done(cancel, entry.ref, entry.final))
            return ACK
        if entry is not None and entry.phase == "pending":
            entry.cancel_requested = True
            if cmd.command_id not in entry.cancel_commands:
                entry.cancel_commands.append(cmd.command_id)
            await tracker.persist([entry])
            return ACK
        if entry is None or entry.phase == "tombstone":
            state = await _lookup(deps, exchange, symbol, target_cid)
            wait = (delivery.received_at + exchange.settle_s + deps.settings.fence_s
                    - time.monotonic())
            if state is None and wait > 0:
                # the target's create may still be on the wire from a worker that died (or
                # lost its connection) with it: "absent" holds only after the settle window
                await asyncio.sleep(wait)
                state = await _lookup(deps, exchange, symbol, target_cid)
            if state is None:
                looked = time.monotonic()
                try:  # see the module docstring: absent only while we hold the shard
                    await delivery.fence.proven_at(max(0.0, time.monotonic() - looked))
                except FenceLost as exc:
                    log.warning("lost hold of the cancel, leaving it to the broker: %s", exc)
                    return RETRY
                if delivery.redelivery:  # what a previous holder decided until fence_s
                    await tracker.recall(delivery.shard,
                                         delivery.received_at + deps.settings.fence_s)
                    if await repeat(deps, cancel.client_order_id):
                        return ACK
                    known = tracker.get(target_cid)
                    if known is not None and known.phase == "done":  # its place was refused
                        await answer(deps, cancel, cancel_done(cancel, known.ref, None))
                        return ACK
                if symbol is None and copy and delivery.deferrals < MAX_DEFERRALS:
                    return await _defer(deps, entry, target, delivery)
                log.info("cancel target unknown", extra={"client_order_id": target_cid,
                                                         "shard": delivery.shard,
                                                         "waited_s": cold})
                return await _tombstone(deps, cmd, cancel, target)
            target = ref_of(cmd, symbol=state.symbol, command_id=cmd.target_command_id)
            entry = tracker.add(tracker.open_entry(target, state, deadline_at=None))
            await tracker.persist([entry], [accepted(target, state)])
            entry.accepted.set()
            deps.metrics.reconciliations.labels("adopted_by_cancel").inc()
        await _cancel_entry(deps, cancel, entry, exchange)
    return ACK


async def _lookup(deps: Deps, exchange: Exchange, symbol: str | None,
                  cid: str) -> OrderState | None:
    return await (find(deps, exchange, symbol, cid) if symbol
                  else _find_open(deps, exchange, cid))


async def _find_open(deps: Deps, exchange: Exchange, cid: str) -> OrderState | None:
    """Without a symbol: the target among all the account's open orders (one call)."""
    listed = await call_with_retry(retry_policy(deps.settings), "get_open_orders",
                                   partial(exchange.get_open_orders, None),
                                   deps.metrics.on_retry)
    return next((o for o in listed if o.client_order_id == cid), None)


async def _defer(deps: Deps, entry: Entry | None, target: OrderRef,
                 delivery: Delivery) -> Outcome:
    """See the module docstring. The tombstone goes down first, without an outcome: the
    first handling may have promised "it will not be placed later", and the target's
    PlaceOrder may be queued behind this cancel."""
    if entry is None:
        entry = deps.tracker.add(Entry(ref=target, phase="tombstone",
                                       expires_at=time.time() + keep_s(deps.settings)))
        await deps.tracker.persist([entry])
    deps.metrics.reconciliations.labels("cancel_deferred").inc()
    log.info("cancel copy found no open target, deferring it", extra={
        "client_order_id": target.client_order_id, "deferrals": delivery.deferrals})
    return DEFER


async def _tombstone(deps: Deps, cmd: CancelOrder, cancel: OrderRef,
                     target: OrderRef) -> Outcome:
    entry = deps.tracker.add(Entry(ref=target, phase="tombstone",
                                   expires_at=time.time() + keep_s(deps.settings)))
    await answer(deps, cancel, cancel_rejected(
        cancel, RejectReason.ORDER_NOT_FOUND,
        f"no order for command {cmd.target_command_id}; it will not be placed later",
        target), entries=[entry])
    return ACK


async def handle_cancel_all(cmd: CancelAll, deps: Deps, delivery: Delivery) -> Outcome:
    """Cancel every open ``ow-`` order of the account (and symbol), and every pending one."""
    tracker = deps.tracker
    cancel = ref_of(cmd)
    async with delivery.turn:
        exchange = await deps.exchanges.get(cmd.account, cmd.exchange)
        listed = await call_with_retry(retry_policy(deps.settings), "get_open_orders",
                                       partial(exchange.get_open_orders, cmd.symbol),
                                       deps.metrics.on_retry)
        canceled: list[str] = []
        closed: list[str] = []
        for state in listed:
            cid = state.client_order_id or ""
            if not cid.startswith(CLIENT_ID_PREFIX):
                continue  # not placed by this system
            entry = tracker.get(cid)
            if entry is None or entry.phase != "open":
                entry = tracker.add(tracker.open_entry(
                    OrderRef(command_id=f"unknown:{cid}", account=cmd.account,
                             exchange=cmd.exchange, symbol=state.symbol,
                             client_order_id=cid), state, deadline_at=None))
                entry.accepted.set()
            await _cancel_entry(deps, None, entry, exchange)
            (canceled if entry.final is None or entry.final.status == "canceled"
             else closed).append(cid)
        pending = [e for e in tracker.live_entries(cmd.account, cmd.exchange)
                   if e.phase == "pending" and cmd.symbol in (None, e.ref.symbol)]
        for e in pending:
            e.cancel_requested = True
        await tracker.persist(pending, [cancel_all_done(cancel, canceled, closed)])
    return ACK

