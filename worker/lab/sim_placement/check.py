"""The invariants a finished run must satisfy.

1. At most one exchange order per (account, command_id).
2. Every command ends with exactly one terminal outcome (distinct event ids), consistent
   with the exchange's final state: an order on the exchange -> filled/canceled matching
   its status and filled amount; no order -> rejected/failed (or cancel_done not_placed).
3. No event id names two different states.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import msgspec

from schemas import (
    CancelDone,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    RejectReason,
    client_order_id,
)
from worker.lab.sim_placement.schedule import Cmd

if TYPE_CHECKING:
    from worker.lab.sim_placement.exchange import SimOrder
    from worker.lab.sim_placement.world import World

ACCOUNT = "acct1"
PLACE_TERMINAL = (OrderFilled, OrderCanceled, OrderRejected, OrderFailed)
CANCEL_TERMINAL = (CancelDone, CancelRejected)
_SNAPSHOT = frozenset({"filled", "remaining", "average_price", "fee", "fee_currency"})


def outcomes(world: World, c: Cmd) -> dict[str, Event]:
    """The distinct terminal events of command ``c`` (by event id)."""
    kinds = PLACE_TERMINAL if c.kind == "place" else CANCEL_TERMINAL
    return {e.event_id: e for _, _, e in world.events
            if e.command_id == c.command_id and isinstance(e, kinds)}


def state_key(e: Event) -> str:
    """What an event id must always name: the event minus its time and free text (and,
    for OrderAccepted, minus the fill snapshot taken with it)."""
    d: dict[str, Any] = msgspec.to_builtins(e)
    d.pop("occurred_at", None)
    d.pop("message", None)
    if isinstance(e, OrderAccepted):
        for k in _SNAPSHOT:
            d.pop(k, None)
    return repr(sorted(d.items()))


def _status(o: SimOrder) -> str:
    return {"closed": "filled"}.get(o.status, o.status)


Violation = tuple[str, str]
"""(kind, text): kinds are double_order, event_id, outcomes, inconsistent, unfinished,
and the milder refusal_variants / cancel_variants (several outcomes, none of them contradicted
by the exchange; no longer tolerated, see ``worker.lab.sim_placement.known``)."""


def _place(world: World, c: Cmd, orders: list[SimOrder], out: list[Violation]) -> None:
    terms = outcomes(world, c)
    names = sorted(f"{type(e).__name__}({getattr(e, 'reason', '')})" for e in terms.values())
    if len(terms) != 1:
        refusals = all(isinstance(e, OrderRejected | OrderFailed) for e in terms.values())
        kind = "refusal_variants" if terms and refusals and not orders else "outcomes"
        out.append((kind, f"{c.command_id}: {len(terms)} terminal outcomes {names}"))
    cid = client_order_id(ACCOUNT, c.command_id)
    accepted = any(isinstance(e, OrderAccepted) and e.client_order_id == cid
                   for _, _, e in world.events)
    if not orders:
        if accepted:
            out.append(("inconsistent", f"{c.command_id}: OrderAccepted but no order on the "
                        "exchange"))
        for e in terms.values():
            if isinstance(e, OrderFilled | OrderCanceled):
                out.append(("inconsistent", f"{c.command_id}: {type(e).__name__} but no order "
                            "on the exchange"))
        return
    o = orders[-1]
    for e in terms.values():
        if isinstance(e, OrderRejected | OrderFailed):
            out.append(("inconsistent", f"{c.command_id}: {type(e).__name__}({e.reason}) but "
                        f"the exchange has order {o.id} ({o.status}, filled {o.filled})"))
        elif isinstance(e, OrderFilled) and (o.status != "closed" or e.filled != o.filled):
            out.append(("inconsistent", f"{c.command_id}: OrderFilled({e.filled}) but the "
                        f"exchange has {o.status}, filled {o.filled}"))
        elif isinstance(e, OrderCanceled) and (o.status not in ("canceled", "expired")
                                                or e.filled != o.filled):
            out.append(("inconsistent", f"{c.command_id}: OrderCanceled({e.filled}) but the "
                        f"exchange has {o.status}, filled {o.filled}"))


def _cancel(world: World, c: Cmd, by_cid: dict[str, list[SimOrder]],
            out: list[Violation]) -> None:
    terms = outcomes(world, c)
    if len(terms) != 1:
        names = sorted(f"{type(e).__name__}({getattr(e, 'reason', '')})"
                       for e in terms.values())
        late = len(terms) == 2 and any(
            isinstance(e, CancelRejected) and e.reason != RejectReason.ORDER_NOT_FOUND
            for e in terms.values())
        out.append(("cancel_variants" if late else "outcomes",
                    f"{c.command_id}: {len(terms)} cancel outcomes {names}"))
    assert c.target is not None
    orders = by_cid.get(client_order_id(ACCOUNT, c.target), [])
    for e in terms.values():
        if isinstance(e, CancelDone):
            want = _status(orders[-1]) if orders else "not_placed"
            if e.order_status != want:
                out.append(("inconsistent", f"{c.command_id}: cancel_done({e.order_status}) "
                            f"but the target is {want} on the exchange"))
        elif isinstance(e, CancelRejected) and e.reason == RejectReason.ORDER_NOT_FOUND \
                and orders:
            out.append(("inconsistent", f"{c.command_id}: cancel_rejected(order_not_found) "
                        f"but the target exists ({orders[-1].status})"))


def check(world: World) -> list[Violation]:
    """Every violated invariant (empty: the run is correct)."""
    out: list[Violation] = []
    by_cid: dict[str, list[SimOrder]] = defaultdict(list)
    for o in world.exchange.orders.values():
        by_cid[o.req.client_order_id].append(o)
    for cid, orders in by_cid.items():
        if len(orders) > 1:
            out.append(("double_order", f"{cid} has {len(orders)} orders on the exchange: "
                        + ", ".join(f"{o.id} {o.status} at {o.created:.3f}" for o in orders)))
    seen: dict[str, tuple[str, Event]] = {}
    for _, _, e in world.events:
        key = state_key(e)
        first = seen.setdefault(e.event_id, (key, e))
        if first[0] != key:
            out.append(("event_id", f"event id {e.event_id} names two states: "
                        f"{first[1]!r} / {e!r}"))
            break
    for c in world.sched.commands:
        if c.kind == "place":
            _place(world, c, by_cid.get(client_order_id(ACCOUNT, c.command_id), []), out)
        else:
            _cancel(world, c, by_cid, out)
    if world.finished_at is None or not world.done():
        out.append(("unfinished", "some command was never settled with an outcome"))
    return out
