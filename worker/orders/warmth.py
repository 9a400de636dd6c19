"""Whether this worker has seen every tracking record of a shard it consumes.

A worker that starts consuming a shard (its first delivery on a new channel, or after a
gap of 1.5 cycles, when it may have lost the shard meanwhile) sends a *marker* round the
shard's carousel: an empty record batch naming this worker and epoch, into the shard's
wait queue like any record. Why its return proves the registry complete: the wait queue
holds every message for the same TTL and expires them in order, dead-lettering each
into the shard queue behind what is already there, and the shard queue delivers in
order (messages handed back go first). So when the marker comes back, every record
that was in the wait queue or the shard queue when it was sent has been delivered
here; the records the previous owner held unacked were handed back before this worker
got the shard. Time alone cannot tell: records come round behind the shard's command
backlog, which had cancels answer "not found" for orders whose records were still on
their way. While this worker holds the shard its marker keeps circulating (one message
per shard and cycle), so a steady owner stays warm.

Limits: dead-lettering that had to retry (a node lost) can reorder; such a record comes
round a cycle later. A marker that does not come back within three cycles is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from worker.ports import Delivery, Deps

log = logging.getLogger(__name__)

GAP_CYCLES = 1.5
RESEND_CYCLES = 3.0
MAX_DEFERRALS = 3
"""How often a command that needs a complete registry is sent round the carousel to wait
for it (worker.orders.cancel); after that it decides on what is known."""


class ShardWarmth:
    def __init__(self, cycle_s: float, owner: str) -> None:
        self.cycle_s = cycle_s
        self.owner = owner
        self._seq = itertools.count(1)
        self._last: dict[int, float] = {}
        self._channel: dict[int, object] = {}
        self._marker: dict[int, str] = {}
        self._sent_at: dict[int, float] = {}
        self._warm: dict[int, asyncio.Event] = {}

    def _event(self, shard: int) -> asyncio.Event:
        return self._warm.setdefault(shard, asyncio.Event())

    def seen(self, shard: int, channel: object = None, now: float | None = None
             ) -> str | None:
        """A delivery of ``shard`` arrived (on ``channel``): the marker to send, if any."""
        now = time.monotonic() if now is None else now
        gap = now - self._last.get(shard, -1e18) > GAP_CYCLES * self.cycle_s
        moved = channel is not None and self._channel.get(shard) is not channel
        self._last[shard] = now
        if channel is not None:
            self._channel[shard] = channel
        if gap or moved or shard not in self._marker:
            self._marker[shard] = f"{self.owner}/{shard}/{next(self._seq)}"
            self._sent_at.pop(shard, None)
            self._event(shard).clear()
        sent = self._sent_at.get(shard)
        if sent is None or (not self.warm(shard) and now - sent > RESEND_CYCLES * self.cycle_s):
            self._sent_at[shard] = now
            return self._marker[shard]
        return None

    def send_failed(self, shard: int, marker: str) -> None:
        """The marker's publish failed: the next delivery sends it again."""
        if self._marker.get(shard) == marker:
            self._sent_at.pop(shard, None)

    def came_back(self, shard: int, marker: str, now: float | None = None) -> bool:
        """A marker arrived. True if it is this epoch's and should go round again (spare
        copies, e.g. of a resend, are dropped)."""
        if self._marker.get(shard) != marker:
            return False  # another worker's, or an earlier epoch's: let it go
        now = time.monotonic() if now is None else now
        self._event(shard).set()
        if now - self._sent_at.get(shard, -1e18) < self.cycle_s / 2:
            return False
        self._sent_at[shard] = now
        return True

    def current(self, shard: int) -> str | None:
        """This epoch's marker for ``shard``."""
        return self._marker.get(shard)

    def arrived(self, shard: int, marker: str) -> None:
        """Something sent round the carousel in this epoch came back (a deferred
        command): everything ahead of it has arrived, as for the marker."""
        if marker and self._marker.get(shard) == marker:
            self._event(shard).set()

    def warm(self, shard: int) -> bool:
        """Every record of ``shard`` that existed when this worker took it has arrived.
        A shard no delivery was reported for (a handler called without a consumer:
        unit tests, examples) counts as warm."""
        return shard not in self._marker or self._event(shard).is_set()

    async def wait(self, shard: int, timeout_s: float) -> bool:
        """Until the shard is warm, for at most ``timeout_s``; whether it is."""
        if self.warm(shard):
            return True
        if timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event(shard).wait(), timeout_s)
        return self.warm(shard)


async def wait_warm(deps: Deps, delivery: Delivery) -> float:
    """Wait (holding the delivery and its account's turn) until the shard's registry is
    complete, at most until two cycles and a second after the delivery arrived (time
    enough for the marker when nothing is queued ahead of it); the seconds waited."""
    warmth, shard = deps.tracker.warmth, delivery.shard
    if warmth.warm(shard):
        return 0.0
    start = time.monotonic()
    await warmth.wait(shard, delivery.received_at + 2 * warmth.cycle_s + 1.0 - start)
    return time.monotonic() - start


def defer_or_decide(deps: Deps, delivery: Delivery) -> bool:
    """The shard is still cold after ``wait_warm``: True to defer the command (it goes
    round the carousel and comes back behind every record on its way now), False once
    it was deferred ``MAX_DEFERRALS`` times: decide on what is known, and say so."""
    if delivery.deferrals < MAX_DEFERRALS:
        deps.metrics.reconciliations.labels("deferred").inc()
        log.info("shard %d: registry not complete yet, deferring", delivery.shard,
                 extra={"shard": delivery.shard, "deferrals": delivery.deferrals})
        return True
    deps.metrics.reconciliations.labels("registry_incomplete").inc()
    log.warning("shard %d: registry still not complete after %d deferrals; deciding on "
                "what is known", delivery.shard, delivery.deferrals,
                extra={"shard": delivery.shard})
    return False
