"""Placement: a PlaceOrder's intake ends when the exchange has the order (or surely not).

    validate -> account turn [shard's facts (memo queue, once per takeover) -> registry
    -> lookup only if an earlier attempt is possible
    (worker.orders.lookup.needs_lookup) -> (redelivered: settle + fence) ->
    fresh? risk -> create once] -> OrderAccepted (+ immediate fills) and the tracking
    record in one confirmed batch -> ack

Outcomes, each decided here and nowhere else:
* invalid                                -> OrderRejected + dead-letter (poison)
* stale / risk / exchange refused it     -> OrderRejected (nothing was sent, or the
                                            exchange refused outright)
* a cancel already tombstoned this order -> OrderRejected(canceled_before_placement)
  (checked again after the settle wait, a redelivery re-reading the memo queue: the
  previous holder may have tombstoned it until its fence ran out); the tombstone is
  confirmed before the refusal is published
* a copy of a command the tracker owns, pending or finished -> ack, nothing new; a copy
  of a refused command repeats its refusal (refusals are remembered before they are
  published, worker.orders.outcomes), never judged afresh
* transient trouble                      -> retried here, inside the account's turn, so no
                                            later command of the account overtakes it;
                                            after ``intake_budget_s`` -> OrderFailed, or
                                            pending if the lookup itself kept failing or
                                            the command was redelivered
* a create may have reached the exchange and its outcome is unknown (also: a
  redelivered command whose lookup is refused)
                                         -> handed to the tracker as *pending*: found ->
                                            accepted; confirmed absent -> OrderFailed.
                                            Never "rejected".

Fencing (zombie deliveries). A redelivery does not stop the previous holder: a worker
whose connection is dead but not yet noticed may still look up and create. So:
(1) a create is sent (signed, checked again after ccxt's throttle) only before
    T + D, where T is the start of a successful round trip on the channel the command
    came on (``delivery.fence``, redone when older than D/2) and D = ``fence_s``;
(2) a redelivered command trusts "absent" only after it arrived + settle window + D.
Why it holds: the broker redelivers only after closing the old channel, which it had
open when it answered the round trip, so the redelivery arrived at R > T. Every create
of the old holder was signed before T + D < R + D, and the exchange executes a create
at most ``settle_s`` after signing (skew included); so nothing the old holder sent can
execute after R + D + settle_s, when the new holder looks up for the last time before
creating. Durations are measured on each worker's monotonic clock (same rate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

from schemas import Event, OrderFailed, OrderRejected, PlaceOrder, RejectReason
from worker.errors import (
    AmbiguousOrderState,
    AuthError,
    CommandError,
    FenceLost,
    PermanentError,
    RiskRejected,
    TransientError,
)
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.placement import CREATE_FENCE
from worker.exchange.ports import Exchange
from worker.exchange.retry import RetryPolicy, _delay, call_with_retry
from worker.logs import bind
from worker.orders.events import OrderRef, accepted, cancel_done, progress, ref_of, refusal
from worker.orders.follow import cancel_ref
from worker.orders.lookup import needs_lookup
from worker.orders.outcomes import answer, confirm_decided, decided, tombstoned
from worker.orders.registry import Entry
from worker.orders.risk import check_risk
from worker.orders.tracker import Tracker
from worker.orders.validation import ValidOrder, check_fresh, validate_place
from worker.policy import retry_policy
from worker.ports import ACK, RETRY, Delivery, Deps, Outcome

log = logging.getLogger(__name__)
TOMBSTONED = "a CancelOrder for this command ran first; it will not be placed"


class CanceledBeforePlacement(CommandError):
    reason = RejectReason.CANCELED_BEFORE_PLACEMENT


class LookupAmbiguous(AmbiguousOrderState):
    """Before any create of this delivery: the lookup could not tell whether an earlier
    holder or copy placed the order."""


class LookupUnavailable(TransientError):
    """The lookup by client order id failed: whether a copy of the command (or an
    earlier holder) placed the order is unknown."""


async def find(deps: Deps, exchange: Exchange, symbol: str, cid: str) -> OrderState | None:
    """The order with this client id, with transient errors retried per policy."""
    return await call_with_retry(retry_policy(deps.settings), "find_order",
                                 partial(exchange.find_order, symbol, cid),
                                 deps.metrics.on_retry)


async def _reject(deps: Deps, ref: OrderRef, order: ValidOrder | None, reason: RejectReason,
                  message: str, kind: type[OrderRejected] | type[OrderFailed] = OrderRejected
                  ) -> None:
    cmd = order.command if order else None
    event = refusal(kind, ref, reason, message, amount=order.amount if order else Decimal(0),
                    side=cmd.side if cmd else None, order_type=cmd.type if cmd else None)
    if reason == RejectReason.CANCELED_BEFORE_PLACEMENT:  # the tombstone says it already
        await deps.publisher.publish([event])
    else:
        await answer(deps, ref, event)
    deps.metrics.outcomes.labels("rejected" if kind is OrderRejected else "failed").inc()


async def _refuse_tombstoned(deps: Deps, ref: OrderRef, order: ValidOrder) -> Outcome:
    tombstone = deps.tracker.get(ref.client_order_id)
    if tombstone is not None and not tombstone.durable:
        # its cancel's record was never confirmed (that cancel comes back): confirm it
        # first, or a later copy could be placed after this refusal
        await deps.tracker.persist([tombstone])
    await _reject(deps, ref, order, RejectReason.CANCELED_BEFORE_PLACEMENT, TOMBSTONED)
    return ACK


def facts_since(tracker: Tracker, delivery: Delivery) -> float:
    """Facts confirmed before this moment must be known before ``delivery`` is decided."""
    epoch = tracker.warmth.epoch(delivery.shard)
    return max(epoch, delivery.received_at) if delivery.copy else epoch


def _pending(cmd: PlaceOrder, ref: OrderRef, sent_before: float) -> Entry:
    return Entry(ref=ref, phase="pending", side=cmd.side, type=cmd.type, amount=cmd.amount,
                 price=cmd.price, time_in_force=cmd.time_in_force, sent_before=sent_before,
                 deadline_at=time.time() + cmd.timeout_s if cmd.timeout_s else None)


async def _lookup(deps: Deps, exchange: Exchange, cmd: PlaceOrder, delivery: Delivery,
                  cid: str) -> OrderState | None:
    looked_at = time.monotonic()
    state = await find(deps, exchange, cmd.symbol, cid)
    sent_here = deps.tracker.creates.last(cid)
    if state is None and (delivery.redelivery or sent_here is not None):
        # The previous holder of this command may have died, or may still be alive behind
        # a dead connection, with a create on the wire. Both act only before this
        # redelivery arrived + fence_s; once the exchange's settle window has passed
        # after that, "absent" can be trusted. A create this process sent itself (for an
        # earlier copy) is trusted absent once its own settle window has passed. Each
        # copy's wait runs from its own arrival, so copies waiting in one account's turn
        # wait together: a lookup that began after that moment (the copy waited for its
        # turn meanwhile) is trusted as it is.
        since = [sent_here] if sent_here is not None else []
        if delivery.redelivery:
            since.append(delivery.received_at + deps.settings.fence_s)
        trust_at = max(since) + exchange.settle_s
        if looked_at >= trust_at:
            return None
        wait = trust_at - time.monotonic()
        if wait > deps.settings.intake_budget_s:  # e.g. a long recvWindow: never hold a
            raise LookupAmbiguous(               # message that long; the tracker decides
                f"redelivered and not found; absence is known only in {wait:.0f}s")
        if wait > 0:
            await asyncio.sleep(wait)
        state = await find(deps, exchange, cmd.symbol, cid)
    return state


class AlreadyDecided(Exception):
    """The tracker owns this command's order (or its doubt), or published its outcome."""


async def _place(deps: Deps, cmd: PlaceOrder, order: ValidOrder, delivery: Delivery,
                 exchange: Exchange, ref: OrderRef) -> OrderState:
    """Inside the account's turn: the existing order, or a new one created once."""
    why = needs_lookup(ref.client_order_id, cmd.created_at, delivery, deps.seen,
                       known=deps.tracker.get(ref.client_order_id) is not None,
                       now=datetime.now(UTC), max_age_s=deps.settings.max_command_age_s,
                       max_skew_s=deps.settings.max_clock_skew_s,
                       always=deps.settings.lookup_before_create == "always")
    deps.seen.add(ref.client_order_id)
    state = None
    try:
        if why is not None:
            log.info("an earlier attempt is possible (%s): looking the order up first", why)
            state = await _lookup(deps, exchange, cmd, delivery, ref.client_order_id)
    except TransientError as exc:
        raise LookupUnavailable(str(exc)) from exc
    except PermanentError as exc:
        if delivery.redelivery or isinstance(exc, AuthError):
            # e.g. the key lost its read permission: an earlier holder, or an earlier copy
            # of this command (a strategy may publish one twice), may have created it, so
            # this is no refusal; the tracker finds out and alerts while it cannot look
            # (issue 10 #7). Other refusals of a first delivery (an unknown symbol) stand.
            raise LookupAmbiguous(f"lookup refused: {exc}") from exc
        raise
    if state is not None:
        deps.metrics.reconciliations.labels("adopted").inc()
        log.info("order exists, resuming", extra={"client_order_id": ref.client_order_id})
        return state
    if delivery.redelivery:
        # a previous holder, alive behind a dead connection, may have tombstoned or
        # refused this command until fence_s after this delivery arrived: read the memo
        await deps.tracker.recall(delivery.shard, delivery.received_at + deps.settings.fence_s)
    known = deps.tracker.get(ref.client_order_id)
    if tombstoned(known):
        # the cancel's record arrived while this command waited out the settle window
        raise CanceledBeforePlacement(TOMBSTONED)
    if decided(known):
        # while this copy waited out the settle window, the tracker learned the command
        # (its record came round) or even published its outcome: that stands
        raise AlreadyDecided(ref.client_order_id)
    s = deps.settings
    check_fresh(cmd.created_at, datetime.now(UTC), s.max_command_age_s, s.max_clock_skew_s)
    await check_risk(order, exchange, s.risk, spot=deps.exchanges.is_spot(cmd.exchange),
                     resting=deps.tracker.exposure.get(cmd.account, cmd.exchange, cmd.symbol))
    request = OrderRequest(symbol=cmd.symbol, side=cmd.side, type=cmd.type,
                           amount=order.amount, price=order.price,
                           client_order_id=ref.client_order_id,
                           time_in_force=cmd.time_in_force)
    deps.crash.hit("before_create")
    fence_s = s.fence_s

    async def send_by() -> float:
        return await delivery.fence.proven_at(fence_s / 2) + fence_s

    token = CREATE_FENCE.set(send_by)
    try:
        state = await exchange.execute_trade(request, assume_absent=True)
    except (TransientError, PermanentError, AmbiguousOrderState):
        raise
    except Exception as exc:  # a bug after the create may have gone out: not a refusal
        raise AmbiguousOrderState(f"create interrupted: {exc!r}") from exc
    finally:
        CREATE_FENCE.reset(token)
        deps.tracker.creates.ended(ref.client_order_id)
    deps.crash.hit("after_create")
    return state


async def handle_place(cmd: PlaceOrder, deps: Deps, delivery: Delivery) -> Outcome:
    ref = ref_of(cmd)
    cid = ref.client_order_id
    bind(client_order_id=cid)
    try:
        order = validate_place(cmd)
    except CommandError as exc:
        await _reject(deps, ref, None, exc.reason, str(exc))
        return Outcome("dead_letter", f"invalid: {exc}")
    tracker, settings = deps.tracker, deps.settings
    policy: RetryPolicy = retry_policy(settings)
    give_up_at = time.monotonic() + settings.intake_budget_s
    async with delivery.turn:
        # a worker that just took the shard over reads its facts first: a tombstone or a
        # refusal its previous owner left may still be on its way round the carousel; a
        # copy reads every fact confirmed before it arrived (one read serves many)
        await tracker.recall(delivery.shard, facts_since(tracker, delivery))
        known = tracker.get(cid)
        behind_tombstone = tombstoned(known)
        if behind_tombstone and not delivery.copy:
            return await _refuse_tombstoned(deps, ref, order)
        # a tombstoned copy looks the order up first (below): an earlier holder may have
        # placed it before the cancel ran (a cancel without a symbol sees only open
        # orders), and then its outcome is the order's, not a refusal. It never creates:
        # the tombstone is checked again before any create.
        if known is not None and decided(known):
            # a copy of a command whose order (or its doubt) the tracker owns, or whose
            # outcome is published (confirmed) already: a lookup could miss the order
            # (lagging history) and place it again. A remembered refusal is repeated.
            await confirm_decided(deps, known)
            return ACK
        attempt = 0
        while True:
            attempt += 1
            try:
                exchange = await deps.exchanges.get(cmd.account, cmd.exchange)
                state = await _place(deps, cmd, order, delivery, exchange, ref)
                break
            except AmbiguousOrderState as exc:
                if behind_tombstone and isinstance(exc, LookupAmbiguous):
                    # no create was sent: the tombstone's refusal stands, as before
                    return await _refuse_tombstoned(deps, ref, order)
                return await _hand_over(deps, cmd, ref, exc)
            except AlreadyDecided:
                now_known = tracker.get(cid)
                if now_known is not None:  # e.g. a refusal remembered meanwhile: say it again
                    await confirm_decided(deps, now_known)
                return ACK  # the tracker owns it, or its outcome is published
            except FenceLost as exc:
                # another worker may hold it now: publish nothing, decide nothing
                log.warning("lost hold of the command, leaving it to the broker: %s", exc)
                return RETRY
            except (CommandError, RiskRejected, PermanentError) as exc:
                # a PermanentError out of execute_trade means the exchange refused the
                # create outright (placement turns every doubt into AmbiguousOrderState)
                log.warning("order rejected: %s", exc)
                await _reject(deps, ref, order, exc.reason, str(exc))
                return ACK
            except TransientError as exc:
                # out of execute_trade, a TransientError means the exchange refused every
                # create outright (anything doubtful is AmbiguousOrderState): nothing exists
                # from this delivery. But an earlier copy or holder of the command may have
                # created it: if we could not look, only the tracker may decide.
                if time.monotonic() + _delay(policy, attempt, exc) > give_up_at:
                    if behind_tombstone and isinstance(exc, LookupUnavailable):
                        return await _refuse_tombstoned(deps, ref, order)
                    if isinstance(exc, LookupUnavailable) or delivery.redelivery:
                        return await _hand_over(deps, cmd, ref, exc)
                    await _reject(deps, ref, order, exc.reason,
                                  f"gave up after {settings.intake_budget_s:.0f}s: {exc}",
                                  kind=OrderFailed)
                    return Outcome("dead_letter", f"retries exhausted: {exc!r}")
                deps.metrics.on_retry("place", exc)
                await asyncio.sleep(_delay(policy, attempt, exc))
        entry = tracker.add(tracker.open_entry(
            ref, state, deadline_at=_deadline(cmd, state), price=cmd.price,
            time_in_force=cmd.time_in_force))
    # The account's next command may run now: the exchange and the registry have this order.
    events: list[Event] = [accepted(ref, state)]
    final = progress(ref, state) if state.is_terminal else None
    if final is not None:
        events.append(final)
    if state.is_terminal:  # cancels that joined the order meanwhile end with it
        events += [cancel_done(cancel_ref(entry, c), ref, state) for c in entry.cancel_commands]
    await tracker.persist([] if state.is_terminal else [entry], events)
    entry.accepted.set()
    age = max(0.0, time.time() - cmd.created_at.timestamp())
    log.info("order accepted", extra={"client_order_id": cid, "status": state.status})
    if state.is_terminal:
        tracker.finish(entry, state, age)
    deps.crash.hit("after_accepted")
    deps.metrics.to_accepted.observe(age)
    return ACK


def _deadline(cmd: PlaceOrder, state: OrderState) -> float | None:
    """From the order's own timestamp, so a redelivered command never extends its life."""
    if cmd.timeout_s is None:
        return None
    start = state.timestamp_ms / 1000 if state.timestamp_ms else time.time()
    return start + cmd.timeout_s


async def _hand_over(deps: Deps, cmd: PlaceOrder, ref: OrderRef, exc: Exception) -> Outcome:
    """The create may have reached the exchange: the tracker finds out, durably."""
    log.warning("order state unknown, handing it to the tracker: %r", exc)
    entry = deps.tracker.add(_pending(cmd, ref, sent_before=time.time()))
    await deps.tracker.persist([entry])
    deps.metrics.reconciliations.labels("pending").inc()
    return ACK
