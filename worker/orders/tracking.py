"""Follow an accepted order until it is terminal, publishing each new state.

Polls with growing intervals; at the deadline it cancels the order (a cancel
that finds the order already closed is fine) and keeps polling until the
exchange reports a terminal state. Transient errors are retried per policy;
when retries run out the error propagates and the command is retried later,
where reconciliation by client order id resumes tracking.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from functools import partial

from schemas.commands import Command
from worker.errors import InvalidOrder, OrderNotFound, TransientError
from worker.exchange.models import OrderState
from worker.exchange.ports import Exchange
from worker.exchange.retry import call_with_retry
from worker.orders.events import progress
from worker.policy import retry_policy
from worker.ports import Deps

NOT_FOUND_TOLERANCE = 3


def order_deadline(state: OrderState, timeout_s: float) -> float:
    """Deadline in epoch seconds, from the order's own timestamp so a redelivered
    command does not extend an order's life."""
    start = state.timestamp_ms / 1000 if state.timestamp_ms else time.time()
    return start + timeout_s


async def track(cmd: Command, state: OrderState, exchange: Exchange, deps: Deps, cid: str,
                *, deadline: float, command_id: str | None = None) -> OrderState:
    settings = deps.settings
    policy = retry_policy(settings)
    on_retry = deps.metrics.on_retry
    published: Decimal | None = None
    interval = settings.poll_interval_s
    cancel_sent = False
    not_found = 0
    while True:
        event = progress(cmd, state, cid, command_id)
        if state.is_terminal:
            if event is not None:
                await deps.publisher.publish([event])
            return state
        if event is not None and state.filled != published:
            await deps.publisher.publish([event])
            published = state.filled
        now = time.time()
        if cancel_sent and now > deadline + settings.cancel_confirm_s:
            raise TransientError(f"order {state.id} still {state.status} after cancel")
        if now >= deadline and not cancel_sent:
            cancel_sent = True
            try:
                state = await call_with_retry(
                    policy, "cancel_order",
                    partial(exchange.cancel_order, cmd.symbol, state.id), on_retry)
            except (OrderNotFound, InvalidOrder):
                pass  # already gone (filled or canceled): the next poll tells which
            continue
        pause = interval if cancel_sent else min(interval, max(deadline - now, 0.0))
        await asyncio.sleep(pause)
        interval = min(interval * 1.5, settings.poll_max_interval_s)
        try:
            state = await call_with_retry(
                policy, "get_order", partial(exchange.get_order, cmd.symbol, state.id), on_retry)
            not_found = 0
        except OrderNotFound:
            not_found += 1  # a just-created order can be briefly invisible
            if not_found > NOT_FOUND_TOLERANCE:
                raise
