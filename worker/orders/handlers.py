"""Command handlers: plain async functions, no broker types.

Outcome per failure class (see worker.errors):
* invalid command           -> OrderRejected, dead-letter (poison, never retried)
* stale / risk / exchange no -> OrderRejected, ack
* transient / ambiguous     -> retry (requeue); on the final delivery OrderFailed + dead-letter
* unexpected bug            -> same as transient, so the delivery-limit bounds it
A command is acked only after its terminal event is confirmed by the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from schemas import CancelOrder, Event, OrderFailed, OrderRejected, PlaceOrder, client_order_id
from schemas.commands import Command
from schemas.events import RejectReason
from worker.errors import (
    AmbiguousOrderState,
    CommandError,
    PermanentError,
    RiskRejected,
    StaleCommand,
    TransientError,
)
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.ports import Exchange
from worker.exchange.retry import call_with_retry
from worker.logs import bind
from worker.orders.events import accepted, progress, refusal
from worker.orders.risk import check_risk
from worker.orders.tracking import order_deadline, track
from worker.orders.validation import check_fresh, validate_place
from worker.policy import retry_policy
from worker.ports import ACK, RETRY, Delivery, Deps, Outcome

log = logging.getLogger(__name__)


async def _refuse(deps: Deps, cmd: Command, cid: str, kind: type[OrderRejected] | type[OrderFailed],
                  reason: RejectReason, message: str) -> None:
    order: dict[str, Any] = {}
    if isinstance(cmd, PlaceOrder):
        with contextlib.suppress(InvalidOperation):
            order = {"amount": Decimal(cmd.amount), "side": cmd.side, "order_type": cmd.type}
    await deps.publisher.publish([refusal(
        kind, command_id=cmd.command_id, account=cmd.account, exchange=cmd.exchange,
        symbol=cmd.symbol, cid=cid, reason=reason, message=message, **order)])
    deps.metrics.outcomes.labels("rejected" if kind is OrderRejected else "failed").inc()


async def _find(deps: Deps, exchange: Exchange, symbol: str, cid: str) -> OrderState | None:
    """The order with this client id, with transient errors retried per policy."""
    return await call_with_retry(retry_policy(deps.settings), "find_order",
                                 partial(exchange.find_order, symbol, cid),
                                 deps.metrics.on_retry)


async def handle_place(cmd: PlaceOrder, deps: Deps, delivery: Delivery, cid: str) -> Outcome:
    bind(client_order_id=cid)
    try:
        order = validate_place(cmd)
    except CommandError as exc:
        await _refuse(deps, cmd, cid, OrderRejected, exc.reason, str(exc))
        return Outcome("dead_letter", f"invalid: {exc}")
    settings = deps.settings
    async with delivery.turn:
        exchange = await deps.exchanges.get(cmd.account, cmd.exchange)
        state = await _find(deps, exchange, cmd.symbol, cid)
        wait = delivery.received_at + exchange.settle_s - time.monotonic()
        if state is None and (delivery.redelivered or delivery.attempt > 1) and wait > 0:
            # An earlier delivery may have died with its create still on the wire; it was
            # sent before this redelivery arrived, so once the exchange's settle window has
            # passed since then, "absent" can be trusted.
            await asyncio.sleep(wait)
            state = await _find(deps, exchange, cmd.symbol, cid)
        if state is not None:
            deps.metrics.reconciliations.labels("adopted").inc()
            log.info("order exists, resuming", extra={"command_id": cmd.command_id,
                                                      "client_order_id": cid})
        else:
            check_fresh(cmd.created_at, datetime.now(UTC), settings.max_command_age_s,
                        settings.max_clock_skew_s)
            await check_risk(order, exchange, settings.risk,
                             spot=deps.exchanges.is_spot(cmd.exchange))
            request = OrderRequest(symbol=cmd.symbol, side=cmd.side, type=cmd.type,
                                   amount=order.amount, price=order.price,
                                   client_order_id=cid, time_in_force=cmd.time_in_force)
            deps.crash.hit("before_create")
            state = await exchange.execute_trade(request, assume_absent=True)
            deps.crash.hit("after_create")
    # The account's next command may execute now: the exchange has this order, so its
    # risk checks see it. Events of one order stay ordered by their sequence.
    first: list[Event] = [accepted(cmd, state, cid)]
    outcome_event = progress(cmd, state, cid) if state.is_terminal else None
    if outcome_event is not None:  # filled at once: one confirmed batch, one round trip
        first.append(outcome_event)
    await deps.publisher.publish(first)
    deps.crash.hit("after_accepted")
    deps.metrics.to_accepted.observe(_age(cmd))
    final = state
    if outcome_event is None:
        deps.tracking.add(cid)
        try:
            final = await track(cmd, state, exchange, deps, cid,
                                deadline=order_deadline(state, cmd.timeout_s))
        except PermanentError as exc:
            # The order is live but can no longer be followed (e.g. key revoked): never
            # call it rejected. Fail loudly and park the command for an operator.
            log.error("accepted order can no longer be followed: %s", exc)
            await _refuse(deps, cmd, cid, OrderFailed, exc.reason,
                          f"order {state.id} accepted, then: {exc}")
            return Outcome("dead_letter", f"order {state.id} unfollowable: {exc}")
        finally:
            deps.tracking.discard(cid)
    outcome = {"closed": "filled"}.get(final.status, final.status)
    deps.metrics.outcomes.labels(outcome).inc()
    deps.metrics.to_terminal.labels(outcome).observe(_age(cmd))
    return ACK


async def handle_cancel(cmd: CancelOrder, deps: Deps, delivery: Delivery,
                        target_cid: str) -> Outcome:
    async with delivery.turn:
        exchange = await deps.exchanges.get(cmd.account, cmd.exchange)
        state = await _find(deps, exchange, cmd.symbol, target_cid)
    if state is None:
        await _refuse(deps, cmd, target_cid, OrderRejected, RejectReason.ORDER_NOT_FOUND,
                      f"no order for command {cmd.target_command_id}")
        return ACK
    # Cancel now and publish the target's terminal state; event ids are derived from
    # state, so this dedupes against the events of the placing command's own tracker.
    await track(cmd, state, exchange, deps, target_cid, deadline=0.0,
                command_id=cmd.target_command_id)
    return ACK


def _age(cmd: Command) -> float:
    return max(0.0, time.time() - cmd.created_at.timestamp())


async def handle(cmd: Command, deps: Deps, delivery: Delivery) -> Outcome:
    """Dispatch one decoded command and map every failure to exactly one Outcome.
    The client order id (of the order the command is about) is derived once, here."""
    cid = client_order_id(cmd.account, getattr(cmd, "target_command_id", cmd.command_id))
    deps.metrics.commands.labels(type(cmd).__name__).inc()
    deps.metrics.in_flight.inc()
    try:
        match cmd:
            case PlaceOrder():
                return await handle_place(cmd, deps, delivery, cid)
            case CancelOrder():
                return await handle_cancel(cmd, deps, delivery, cid)
    except (StaleCommand, RiskRejected, PermanentError) as exc:
        log.warning("order rejected: %s", exc, extra={"command_id": cmd.command_id,
                                                      "client_order_id": cid})
        await _refuse(deps, cmd, cid, OrderRejected, exc.reason, str(exc))
        return ACK
    except (TransientError, AmbiguousOrderState) as exc:
        return await _retry_or_give_up(cmd, deps, delivery, cid, exc, exc.reason)
    except Exception as exc:
        log.exception("unexpected error", extra={"command_id": cmd.command_id,
                                                 "client_order_id": cid})
        return await _retry_or_give_up(cmd, deps, delivery, cid, exc,
                                       RejectReason.RETRIES_EXHAUSTED)
    finally:
        deps.metrics.in_flight.dec()
    raise AssertionError("unreachable")  # pragma: no cover


async def _retry_or_give_up(cmd: Command, deps: Deps, delivery: Delivery, cid: str,
                            exc: Exception, reason: RejectReason) -> Outcome:
    if not delivery.final_attempt:
        log.warning("will retry (attempt %d): %r", delivery.attempt, exc,
                    extra={"command_id": cmd.command_id, "client_order_id": cid})
        return RETRY
    log.error("giving up after %d attempts: %r", delivery.attempt, exc,
              extra={"command_id": cmd.command_id, "client_order_id": cid})
    await _refuse(deps, cmd, cid, OrderFailed, reason, f"{type(exc).__name__}: {exc}")
    return Outcome("dead_letter", f"gave up after {delivery.attempt} attempts: {exc!r}")
