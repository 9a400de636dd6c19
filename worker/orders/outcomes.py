"""One outcome per command, for every copy of it (issue 10).

A command can reach a worker more than once: redelivered after a lost ack or a crash,
handed back after an unconfirmed publish, published twice by its client. When an
exchange order carries the outcome (filled, canceled...), every copy derives the same
events from that order. When none does -- a refused PlaceOrder, and every CancelOrder --
a copy judged afresh can conclude differently (the exchange is reachable again, the
target turned up, the risk limits moved) and publish a second, different outcome. So
such an outcome is *remembered*, and copies repeat it:

* ``answer`` first puts a ``done`` entry holding the event under the command's own client
  order id into the registry and has its tracking record confirmed, and only then
  publishes the event. The record circulates like every tracking record until
  ``expires_at`` (``keep_s``: a copy arriving later than that is stale anyway).
* ``repeat``: a copy that finds the entry re-publishes the remembered event (same event
  id, same state) and decides nothing. The entry is also a *fact* in the shard's memo
  queue (worker.broker.memo), which a worker that takes the shard over reads before it
  decides any command of it: the record may still be a cycle and a backlog away.
* A remembered outcome never confirmed here was never published: a confirmed one for
  the same command, from a record or the memo queue, replaces it (Entry.merge).

What survives what. The entry is in this process's registry before anything is sent, so
a copy handed back here after an unconfirmed publish repeats the outcome even if the
event landed. The record is confirmed before the event is sent, so once the event may
exist, any worker that owns the shard learns the outcome within one ``track_cycle_s``;
a crash between the two leaves a remembered outcome that was never published, which
the next copy publishes. The cost: one more confirmed publish per refusal and per
cancel outcome, and one circulating record each for ``keep_s``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from schemas import CancelRejected, Event
from worker.orders.events import OrderRef
from worker.orders.registry import Entry
from worker.ports import Deps
from worker.settings import Settings


def keep_s(s: Settings) -> float:
    """How long a tombstone or a remembered outcome is kept: past it, a copy is stale."""
    return s.max_command_age_s + s.max_clock_skew_s + s.fence_s + s.track_cycle_s


def remembered(deps: Deps, cid: str) -> Event | None:
    """The outcome already decided for the command with client order id ``cid``."""
    entry = deps.tracker.get(cid)
    return entry.outcome if entry is not None and entry.phase == "done" else None


async def repeat(deps: Deps, cid: str) -> bool:
    """Re-publish the remembered outcome of ``cid``'s command, if there is one."""
    entry = deps.tracker.get(cid)
    if entry is None or entry.phase != "done" or entry.outcome is None:
        return False
    # its record was never confirmed: now, before the event again; so is the tombstone a
    # cancel's "not found" promises ("it will not be placed later")
    unconfirmed = [e for e in (entry, _promised_tombstone(deps, entry.outcome))
                   if e is not None and not e.durable]
    if unconfirmed:
        await deps.tracker.persist(unconfirmed)
    await deps.publisher.publish([entry.outcome])
    return True


async def answer(deps: Deps, ref: OrderRef, event: Event, also: Sequence[Event] = (),
                 entries: Sequence[Entry] = ()) -> None:
    """Publish ``event`` as the one outcome of the command ``ref`` names (an outcome
    remembered earlier wins), after ``also``; ``entries``' records go with its record."""
    tracker = deps.tracker
    entry = tracker.add(Entry(ref=ref, phase="done", outcome=event,
                              expires_at=time.time() + keep_s(deps.settings)))
    if entry.phase != "done" or entry.outcome is None:
        # the client id names a live order after all (a client reused a command id):
        # nothing to remember under it, publish as before
        await tracker.persist(entries, [*also, event])
        return
    await tracker.persist([*entries, entry])
    await deps.publisher.publish([*also, entry.outcome])


def _promised_tombstone(deps: Deps, outcome: Event) -> Entry | None:
    target = getattr(outcome, "target_client_order_id", None)
    if not isinstance(outcome, CancelRejected) or target is None:
        return None
    entry = deps.tracker.get(target)
    return entry if entry is not None and entry.phase == "tombstone" else None


def tombstoned(known: Entry | None) -> bool:
    """A cancel found no order for this client id: the command must not be placed."""
    return known is not None and known.phase == "tombstone" and not known.terminal


def decided(known: Entry | None) -> bool:
    """The tracker owns this command's order (or its doubt), or its outcome is published
    (or remembered: ``done``)."""
    return known is not None and (known.terminal or known.phase == "done" or (known.live and (
        known.accepted.is_set() or known.phase == "pending")))


async def confirm_decided(deps: Deps, known: Entry) -> None:
    """A copy of a decided command: repeat a remembered refusal; a pending entry whose
    record was never confirmed (the publish failed) gets it confirmed now."""
    if not await repeat(deps, known.ref.client_order_id) and known.phase == "pending" \
            and known.live and not known.durable:
        await deps.tracker.persist([known])
