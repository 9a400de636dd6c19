"""When placement must look an order up by client id before creating it.

The lookup before a create exists for one reason: an *earlier attempt* of the same
command may already have sent a create. On a first attempt it finds nothing and
costs a request (Binance: weight 4 of an order's 5), so it runs only when an
earlier attempt is possible. A worker learns of earlier attempts from:

* the broker: a redelivered message (``redelivered`` flag, quorum
  ``x-delivery-count`` > 0): a previous holder (this worker after a nack, or another
  one whose channel died) may have sent the create;
* the client: a command published again because the first publish's confirm was lost
  (the first copy may be queued too) carries ``REPUBLISH_HEADER`` >= 2
  (``OrderClient`` sets it; other publishers must, see README). Both copies sit in the
  same single-active-consumer shard queue, first copy first, so the copy marked as a
  re-send is the one that runs second and looks up;
* its own memory: a client id this process has started to place, or that the tracker
  knows (``SeenCommands``, the registry);
* time: a command created before this process started (minus the tolerated clock
  skew) may have been handled by a previous process; a stale command is looked up so
  an existing order is still reconciled rather than refused.

Everything else is a first attempt: the single active consumer of the account's
shard holds the only copy, nobody sent a create for it, so "absent" is known without
asking. Rule 1 is untouched: the create still carries the deterministic client id,
and once a create was sent the outcome is only ever "found" or "confirmed absent"
(``placement.place_once``); a duplicate-id refusal is ambiguous, never a rejection.
The one case no worker can see, a publisher sending one command id twice as two
first publishes without the header, is a client contract breach (README); the placement
simulation shows it doubles orders (14 of 3000 gated schedules when its duplicate
publishes are unmarked, none when marked). ``OrderClient`` marks every send
of a command id after its first, re-sends after a lost confirm and repeated ``send``
calls alike; ``OW_LOOKUP_BEFORE_CREATE=always`` restores the lookup for publishers that
cannot.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.ports import Delivery


class SeenCommands:
    """Client ids this process has started to place (bounded, oldest forgotten first),
    and the process start time that bounds what "this process" has seen."""

    def __init__(self, capacity: int = 200_000, started_at: datetime | None = None) -> None:
        self.capacity = capacity
        self.started_at = started_at
        self._ids: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_now(cls) -> SeenCommands:
        return cls(started_at=datetime.now(UTC))

    def __contains__(self, cid: object) -> bool:
        return cid in self._ids

    def add(self, cid: str) -> None:
        self._ids[cid] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


def needs_lookup(cid: str, created_at: datetime, delivery: Delivery, seen: SeenCommands,
                 *, known: bool, now: datetime, max_age_s: float,
                 max_skew_s: float, always: bool = False) -> str | None:
    """Why an earlier attempt of this command is possible (the lookup must run), or
    None for a first attempt (create directly). ``always``: the operator's choice."""
    if always:
        return "always"
    if delivery.redelivery:
        return "redelivered"
    if delivery.published_attempt > 1:
        return "republished"
    if known or cid in seen:
        return "seen"
    if seen.started_at is None or created_at < seen.started_at + timedelta(seconds=max_skew_s):
        return "older_than_worker"
    if (now - created_at).total_seconds() > max_age_s:
        return "stale"
    return None
