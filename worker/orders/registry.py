"""The tracker's in-memory registry: one ``Entry`` per order the worker follows.

The registry is a cache of the durable tracking records (schemas.tracking): an
entry is created by a local placement, a cancel that finds an untracked order,
or the arrival of a record, and every change that must survive a crash is
written back as a fresh record before the command that caused it is acked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from schemas import Event
from schemas.tracking import Phase, TrackOrder
from worker.exchange.models import OrderState
from worker.orders.events import OrderRef, ref_of_record


@dataclass
class Entry:
    ref: OrderRef
    phase: Phase
    side: str | None = None
    type: str | None = None
    amount: str = "0"
    price: str | None = None
    time_in_force: str = "GTC"
    order_id: str | None = None
    placed_at: float | None = None
    deadline_at: float | None = None
    sent_before: float | None = None
    expires_at: float | None = None
    cancel_commands: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    outcome: Event | None = None
    """phase ``done``: the command's one outcome (worker.orders.outcomes)."""
    # -- not durable -------------------------------------------------------------
    durable: bool = False
    """A record of it was confirmed (or it came from one): others can learn it."""
    cancel_sent_at: float = 0.0
    """Epoch seconds the last cancel request was sent (0: none)."""
    terminal: bool = False
    final: OrderState | None = None
    """The terminal state (None with terminal=True: never placed)."""
    published_filled: Decimal | None = None
    renewed_at: float = field(default_factory=lambda: time.monotonic())
    """When a record copy of this entry was last published (monotonic; at first, when the
    entry was made: an entry nobody renews for long belongs to another worker)."""
    confirmed_at: float = float("-inf")
    """When a record copy of it was last confirmed by the broker (monotonic)."""
    last_seen: tuple[str, Decimal] | None = None
    """(status, filled) of the last state observed: an unchanged listing is skipped."""
    misses: int = 0
    """Consecutive polls that could not see the order."""
    stalled: bool = False
    next_lookup_at: float = 0.0
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once OrderAccepted is confirmed: no later state is published before it."""
    memo_key: tuple[str, str | None] | None = None
    """``fact_key`` of the copy of this fact known to be in its shard's memo queue."""
    _amount: tuple[str, Decimal | None] = ("", None)

    def amount_value(self) -> Decimal | None:
        """``amount`` as a number (None if unreadable), parsed once per value."""
        if self._amount[0] != self.amount:
            try:
                value: Decimal | None = Decimal(self.amount)
            except InvalidOperation:
                value = None
            self._amount = (self.amount, value)
        return self._amount[1]

    @property
    def live(self) -> bool:
        return not self.terminal and self.phase not in ("tombstone", "done")

    def to_record(self) -> TrackOrder:
        r = self.ref
        return TrackOrder(
            command_id=r.command_id, account=r.account, exchange=r.exchange, symbol=r.symbol,
            client_order_id=r.client_order_id, phase=self.phase, side=self.side,
            type=self.type, amount=self.amount, price=self.price,
            time_in_force=self.time_in_force, exchange_order_id=self.order_id,
            placed_at=self.placed_at, deadline_at=self.deadline_at,
            sent_before=self.sent_before, expires_at=self.expires_at,
            cancel_commands=tuple(self.cancel_commands),
            cancel_requested=self.cancel_requested, outcome=self.outcome)

    def merge(self, rec: TrackOrder, confirmed: bool = True) -> bool:
        """Fold a record copy into this entry; True if the copy taught it something.
        ``confirmed``: the copy came from the broker (not from an entry made here)."""
        changed = False
        if self.phase == "tombstone" and rec.phase not in ("tombstone", "done"):
            # an order exists after all: the cancel that left the tombstone still wants it gone
            self.phase, self.cancel_requested, changed = rec.phase, True, True
            self.order_id = rec.exchange_order_id
            self._take_order_fields(rec)
        if rec.exchange_order_id and not self.order_id:
            self.order_id, self.phase, changed = rec.exchange_order_id, "open", True
            self.placed_at = self.placed_at or rec.placed_at
        if rec.phase == "tombstone" and self.phase != "tombstone" and not self.cancel_requested:
            self.cancel_requested, changed = True, True
        if rec.cancel_requested and not self.cancel_requested:
            self.cancel_requested, changed = True, True
        for cmd_id in rec.cancel_commands:
            if cmd_id not in self.cancel_commands:
                self.cancel_commands.append(cmd_id)
                changed = True
        if rec.sent_before and (self.sent_before or 0) < rec.sent_before:
            self.sent_before, changed = rec.sent_before, True
        if rec.outcome is not None and (self.outcome is None or (
                confirmed and not self.durable and rec.outcome != self.outcome)):
            # an outcome remembered here but never confirmed was never published (answer
            # publishes only after the record is confirmed): the broker's one wins
            self.outcome, changed = rec.outcome, True
            if self.phase == "tombstone":
                self.phase, self.expires_at = "done", rec.expires_at
            if confirmed and self.phase == "done":  # in the broker, and in its memo queue
                self.durable, self.memo_key = True, fact_key(self)
            elif not confirmed:  # an outcome decided here: not confirmed until persisted
                self.durable = False
        return changed

    def _take_order_fields(self, rec: TrackOrder) -> None:
        self.side, self.type, self.amount = rec.side, rec.type, rec.amount
        self.price, self.time_in_force = rec.price, rec.time_in_force
        self.deadline_at, self.placed_at = rec.deadline_at, rec.placed_at
        self.sent_before = rec.sent_before
        if rec.symbol:
            self.ref = ref_of_record(rec)


def fact_key(entry: Entry) -> tuple[str, str | None] | None:
    """What makes a tombstone or a remembered outcome a fact for the memo queue (None:
    the entry is no fact)."""
    if entry.phase not in ("tombstone", "done"):
        return None
    return entry.phase, entry.outcome.event_id if entry.outcome is not None else None


def entry_from_record(rec: TrackOrder) -> Entry:
    entry = Entry(ref=ref_of_record(rec), phase=rec.phase, order_id=rec.exchange_order_id,
                  expires_at=rec.expires_at, cancel_commands=list(rec.cancel_commands),
                  cancel_requested=rec.cancel_requested, outcome=rec.outcome)
    entry._take_order_fields(rec)
    entry.durable = True
    entry.memo_key = fact_key(entry)  # whoever made the fact wrote it to the memo queue
    if rec.phase != "pending":
        entry.accepted.set()  # an open order from a record was accepted by whoever placed it
    return entry


class RecentCreates:
    """When this process last sent a create for a client order id (monotonic, the moment
    the create call ended, so signing came before it). A later copy of the command (a
    duplicate publish, or this one handed back after a failed publish) must not trust a
    lookup's "absent" until that create's settle window has passed: the exchange may
    still execute it, or not show it yet."""

    def __init__(self, keep_s: float = 600.0) -> None:
        self.keep_s = keep_s
        self._ended: dict[str, float] = {}
        """Oldest first (an id sent again moves to the end)."""

    def ended(self, cid: str, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        self._ended.pop(cid, None)
        self._ended[cid] = now
        # Forget what can no longer matter, oldest first, a few per call. (This used to
        # rebuild the whole dict once it held 10,000 ids, on every create while all of
        # them were younger than keep_s: ~3 ms per order from 17 orders/s on.)
        for _ in range(2):
            oldest = next(iter(self._ended))
            if now - self._ended[oldest] < self.keep_s:
                break
            del self._ended[oldest]

    def last(self, cid: str) -> float | None:
        return self._ended.get(cid)


class ShardWarmth:
    """Whether this worker has seen every record of a shard it consumes.

    Records come round once per cycle, so a worker that has received messages
    of a shard for a whole cycle without a gap knows all of that shard's
    tracked orders. It waits two cycles, because right after a broker restart
    the broker's dead-lettering (which drives the carousel) was seen to lag by
    several seconds. A gap longer than 1.5 cycles means it may have lost and
    regained the shard: it starts over."""

    def __init__(self, cycle_s: float) -> None:
        self.cycle_s = cycle_s
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def seen(self, shard: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._last.get(shard, -1e18) > 1.5 * self.cycle_s:
            self._first[shard] = now
        self._last[shard] = now

    def epoch(self, shard: int) -> float:
        """When this worker's current hold of ``shard`` began (monotonic; now if it has
        seen nothing of it)."""
        return self._first.get(shard, time.monotonic())

    def restart(self, shard: int) -> None:
        """This worker may have lost ``shard`` and got it back: a new hold begins."""
        self._first.pop(shard, None)
        self._last.pop(shard, None)

    def warm_in(self, shard: int, now: float | None = None) -> float:
        """Seconds until the shard's registry is complete (0: it is)."""
        now = time.monotonic() if now is None else now
        first = self._first.get(shard)
        if first is None:
            return 2 * self.cycle_s + 1.0
        return max(0.0, first + 2 * self.cycle_s + 1.0 - now)
