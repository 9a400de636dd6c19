"""Command dispatch: plain async functions, no broker types; every failure maps to one
Outcome (see worker.ports.Outcome).

* PlaceOrder  -> worker.orders.place (decides its own outcomes; see there)
* CancelOrder / CancelAll -> worker.orders.cancel; an exchange that stays unreachable or
  refuses -> ``cancel_rejected`` with the reason, ack (the strategy may send it again);
  a CancelOrder's rejection is remembered like its other outcomes, so a copy repeats it
  (worker.orders.outcomes); a lost hold on the command (FenceLost) -> retry, no event
* anything unexpected -> retry: the message is requeued; a command that keeps failing is
  dead-lettered by the broker's delivery limit and the dead-letter watcher still gives it
  an outcome (worker.orders.deadwatch)
A command is acked only after its events (and tracking records) are confirmed.
"""

from __future__ import annotations

import logging

from schemas import CancelAll, CancelOrder, PlaceOrder
from schemas.commands import Command
from worker.errors import ExchangeError, FenceLost
from worker.orders.cancel import handle_cancel, handle_cancel_all
from worker.orders.events import cancel_rejected, ref_of
from worker.orders.outcomes import answer
from worker.orders.place import handle_place
from worker.ports import ACK, RETRY, Delivery, Deps, Outcome

log = logging.getLogger(__name__)


async def handle(cmd: Command, deps: Deps, delivery: Delivery) -> Outcome:
    """Dispatch one decoded command."""
    deps.metrics.commands.labels(type(cmd).__name__).inc()
    deps.metrics.in_flight.inc()
    try:
        match cmd:
            case PlaceOrder():
                return await handle_place(cmd, deps, delivery)
            case CancelOrder() | CancelAll():
                try:
                    if isinstance(cmd, CancelOrder):
                        return await handle_cancel(cmd, deps, delivery)
                    return await handle_cancel_all(cmd, deps, delivery)
                except FenceLost as exc:
                    log.warning("lost hold of the cancel, leaving it to the broker: %s", exc)
                    return RETRY
                except ExchangeError as exc:
                    log.warning("cancel could not act: %s", exc)
                    # a refusal only while this worker provably still holds the command:
                    # a holder cut off meanwhile may have lost it to one that acted
                    try:
                        await delivery.fence.proven_at(0.0)
                    except FenceLost as lost:
                        log.warning("lost hold of the cancel, leaving it to the broker: %s",
                                    lost)
                        return RETRY
                    if isinstance(cmd, CancelAll):
                        await deps.publisher.publish([cancel_rejected(
                            ref_of(cmd), exc.reason, str(exc))])
                        return ACK
                    target = ref_of(cmd, command_id=cmd.target_command_id)
                    await answer(deps, ref_of(cmd), cancel_rejected(
                        ref_of(cmd), exc.reason, str(exc), target))
                    return ACK
    finally:
        deps.metrics.in_flight.dec()
    raise AssertionError("unreachable")  # pragma: no cover

