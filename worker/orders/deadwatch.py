"""The dead-letter watcher: no command the broker dead-letters goes without an outcome,
and no tracked order loses its record.

Every dead letter reaches ``<p>.dead`` (for operators) and ``<p>.dead.watch`` (for this
watcher). Dead letters the worker made itself (``x-orderworker-reason``) already have
their outcome event. For those the *broker* made (the delivery limit of a shard queue):

* a PlaceOrder      -> handed to the tracker as *pending*: its last holder may have sent a
                       create, so the tracker looks it up by client order id: found ->
                       OrderAccepted and followed; confirmed absent -> OrderFailed;
* a CancelOrder / CancelAll -> ``cancel_rejected(dead_lettered)``: nothing was confirmed
                       canceled, the strategy may send it again;
* a tracking record -> put back into its shard's carousel;
* anything else (an event from the audit queue, an undecodable body) -> left to operators.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from schemas import CancelAll, CancelOrder, PlaceOrder, RejectReason
from schemas.tracking import TrackBatch, TrackOrder
from worker.broker.topology import Names
from worker.orders.events import cancel_rejected, ref_of
from worker.orders.intake import Malformed, parse
from worker.orders.outcomes import answer
from worker.orders.registry import Entry
from worker.ports import Deps

log = logging.getLogger(__name__)


def dead_letter_of(body: bytes, headers: Mapping[str, object], names: Names) -> DeadLetter:
    """Read a dead letter's headers. The *latest* death decides (``x-death`` lists the
    most recent first), never ``x-first-death-*``: a tracking record that reached a shard
    queue's delivery limit had died once before, expired from its wait queue into the
    shard queue, so its first death names the wait queue and reason ``expired``. Read that
    way the watcher took it for something not from a shard queue and dropped it: the
    order's only record was gone and nobody followed the order any more."""
    deaths = headers.get("x-death")
    latest = deaths[0] if isinstance(deaths, list) and deaths else {}
    latest = latest if isinstance(latest, dict) else {}
    queue = _text(latest.get("queue")) or _text(headers.get("x-first-death-queue")) or ""
    reason = (_text(latest.get("reason")) or _text(headers.get("x-first-death-reason"))
              or "unknown")
    worker_reason = headers.get("x-orderworker-reason")
    return DeadLetter(
        body=body, worker_reason=None if worker_reason is None else _text(worker_reason),
        broker_reason=reason, from_shard_queue=queue.startswith(names.commands + "."),
        via_tracking=_text(latest.get("exchange")) == names.tracking)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return None if value is None else str(value)


@dataclass(frozen=True)
class DeadLetter:
    body: bytes
    worker_reason: str | None
    """``x-orderworker-reason``: the worker dead-lettered it and published its outcome."""
    broker_reason: str
    """Why the broker dead-lettered it (its latest death's reason), e.g. ``delivery_limit``."""
    from_shard_queue: bool
    via_tracking: bool
    """It had been published to the tracking exchange (a genuine record)."""


async def on_dead_letter(dead: DeadLetter, deps: Deps) -> None:
    """Give a broker-dead-lettered message its outcome; returns once that is confirmed."""
    if dead.worker_reason is not None or not dead.from_shard_queue:
        return
    msg = parse(dead.body, tracking=dead.via_tracking)
    deps.metrics.reconciliations.labels("dead_letter_watched").inc()
    match msg:
        case Malformed():
            return
        case TrackOrder():
            if dead.via_tracking:
                await deps.publisher.publish([], [msg])
        case TrackBatch():
            if dead.via_tracking:
                await deps.publisher.publish([], list(msg.records))
        case PlaceOrder():
            ref = ref_of(msg)
            log.error("command dead-lettered by the broker (%s); resolving it by lookup",
                      dead.broker_reason, extra={"command_id": msg.command_id})
            pending = Entry(ref=ref, phase="pending", side=msg.side, type=msg.type,
                            amount=msg.amount, price=msg.price,
                            time_in_force=msg.time_in_force, sent_before=time.time(),
                            deadline_at=time.time() + msg.timeout_s if msg.timeout_s else None)
            await deps.publisher.publish([], [pending.to_record()])
        case CancelOrder() | CancelAll():
            target = (ref_of(msg, command_id=msg.target_command_id)
                      if isinstance(msg, CancelOrder) else None)
            event = cancel_rejected(
                ref_of(msg), RejectReason.DEAD_LETTERED,
                f"dead-lettered by the broker ({dead.broker_reason}); send it again", target)
            if target is None:
                await deps.publisher.publish([event])
            else:  # an outcome this worker remembers for it wins (worker.orders.outcomes)
                await answer(deps, ref_of(msg), event)
