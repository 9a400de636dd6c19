"""The order tracker: owns every accepted, non-terminal order until the exchange says
it is terminal, independent of how long any message stays unacked.

Durability (see schemas.tracking): every order the tracker owns has a record
circulating through its shard's wait queue. A record arriving from the carousel
refreshes the registry and is re-published, so the shard's owner, whoever it is
after a crash, failover, broker restart or redeploy, knows every order within
one ``track_cycle_s``. Copies beyond one per cycle are dropped unless they carry
news. Entries not renewed for 10 cycles belong to another worker now and
are dropped here (their records keep circulating to the new owner).

Facts (tombstones, remembered outcomes) also go to the shard's memo queue, and
``recall`` reads it whole when this worker takes a shard over (worker.broker.memo):
records reach a new owner only a cycle, and a command backlog, later.

Status is batched per (account, exchange) in ``worker.orders.follow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from functools import partial

from schemas import Event
from schemas.tracking import TrackBatch, TrackOrder
from worker.exchange.models import OrderState
from worker.metrics import Metrics
from worker.orders.events import OrderRef
from worker.orders.exposure import Exposure
from worker.orders.groupcommit import GroupCommit
from worker.orders.recall import Recall
from worker.orders.registry import (
    Entry,
    RecentCreates,
    ShardWarmth,
    entry_from_record,
    fact_key,
)
from worker.ports import EventPublisher, ExchangeProvider, Memory, NoMemory
from worker.settings import Settings

log = logging.getLogger(__name__)
TERMINAL_KEEP_CYCLES = 3
STALE_CYCLES = 10
"""An entry not renewed here for this many cycles belongs to another worker now."""


class Tracker:
    def __init__(self, settings: Settings, exchanges: ExchangeProvider,
                 publisher: EventPublisher, metrics: Metrics,
                 memory: Memory | None = None) -> None:
        self.settings = settings
        self.exchanges = exchanges
        self.publisher = publisher
        self.metrics = metrics
        self._recall = Recall(memory or NoMemory(), settings.intake_budget_s)
        self.cycle_s = settings.track_cycle_s
        self.entries: dict[str, Entry] = {}
        self._by_account: dict[tuple[str, str], dict[str, Entry]] = {}
        self.exposure = Exposure()
        self.creates = RecentCreates()
        self.warmth = ShardWarmth(self.cycle_s)
        self._followers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._terminal_at: dict[str, float] = {}
        self._pruned_at = 0.0
        self._renewals = GroupCommit(self.persist)
        metrics.tracked.set_function(self._count_live)  # counted when scraped
        self.closed = False

    # -- registry ------------------------------------------------------------------
    def get(self, cid: str) -> Entry | None:
        return self.entries.get(cid)

    def live_entries(self, account: str, exchange: str) -> list[Entry]:
        mine = self._by_account.get((account, exchange))
        if not mine:
            return []
        return [e for e in mine.values() if e.live]

    def _put(self, entry: Entry) -> None:
        cid, ref = entry.ref.client_order_id, entry.ref
        old = self.entries.get(cid)
        if old is not None:
            self._unindex(old)
        self.entries[cid] = entry
        self._by_account.setdefault((ref.account, ref.exchange), {})[cid] = entry

    def _drop(self, cid: str) -> None:
        entry = self.entries.pop(cid, None)
        if entry is not None:
            self._unindex(entry)
        self.exposure.remove(cid)

    def _unindex(self, entry: Entry) -> None:
        key = (entry.ref.account, entry.ref.exchange)
        mine = self._by_account.get(key)
        if mine is not None:
            mine.pop(entry.ref.client_order_id, None)
            if not mine:
                del self._by_account[key]

    def _count_live(self) -> int:
        return sum(1 for e in self.entries.values() if e.live)

    def add(self, entry: Entry) -> Entry:
        """Register (or merge into) the entry for its client order id; start following."""
        cid = entry.ref.client_order_id
        have = self.entries.get(cid)
        if have is not None and not have.terminal:
            have.merge(entry.to_record(), confirmed=False)
            if entry.accepted.is_set():
                have.accepted.set()
            entry = have
        else:
            self._put(entry)
            self._terminal_at.pop(cid, None)
        self.exposure.update(entry)
        if entry.live:
            self._ensure_follower(entry.ref.account, entry.ref.exchange)
        return entry

    def open_entry(self, ref: OrderRef, state: OrderState, *, deadline_at: float | None,
                   price: str | None = None, time_in_force: str = "GTC") -> Entry:
        return Entry(ref=ref, phase="open", side=state.side, type=state.type,
                     amount=str(state.amount), price=price, time_in_force=time_in_force,
                     order_id=state.id, deadline_at=deadline_at,
                     placed_at=(state.timestamp_ms / 1000 if state.timestamp_ms
                                else time.time()))

    def finish(self, entry: Entry, state: OrderState | None,
               age_s: float | None = None) -> None:
        """The order is terminal (``state``; None: never placed), its events confirmed:
        counted in ``ow_orders_total`` and logged at INFO once, whichever path ended it.
        ``age_s``: since the command was created (default: since placement)."""
        first = not entry.terminal
        if entry.phase == "done":  # never placed, remembered: its record keeps circulating
            entry.final = None
        else:
            entry.terminal, entry.final = True, state
            self._terminal_at[entry.ref.client_order_id] = time.monotonic()
        self.exposure.remove(entry.ref.client_order_id)
        self._prune()  # finished entries go even when no record comes round (rate-limited)
        if not first:
            return
        outcome = "failed" if state is None else {"closed": "filled"}.get(state.status,
                                                                           state.status)
        if age_s is None:
            age_s = max(0.0, time.time() - (entry.placed_at or time.time()))
        self.metrics.outcomes.labels(outcome).inc()
        self.metrics.to_terminal.labels(outcome).observe(age_s)
        log.info("order %s", outcome, extra={"client_order_id": entry.ref.client_order_id,
                                             "command_id": entry.ref.command_id})

    async def persist(self, entries: Iterable[Entry], events: Sequence[Event] = ()) -> None:
        """Publish events and fresh record copies in one confirmed batch; a new fact
        (tombstone, remembered outcome) also goes to its shard's memo queue."""
        entries = list(entries)
        records = [e.to_record() for e in entries]
        new_facts = [(e, r) for e, r in zip(entries, records, strict=True)
                     if fact_key(e) is not None and e.memo_key != fact_key(e)]
        await self.publisher.publish(events, records, facts=[r for _, r in new_facts])
        now = time.monotonic()
        for e in entries:
            e.renewed_at = e.confirmed_at = now
            e.durable = True
            self.exposure.update(e)
        for e, _ in new_facts:
            e.memo_key = fact_key(e)

    # -- the memo queues -------------------------------------------------------------
    async def recall(self, shard: int, since: float) -> None:
        """Return once a read of ``shard``'s memo queue that began at or after ``since``
        (monotonic) is in the registry: then every tombstone and remembered outcome
        confirmed before ``since`` is known here."""
        await self._recall.since(shard, since, partial(self._learn_all, shard))

    def _learn_all(self, shard: int, facts: Sequence[TrackOrder]) -> None:
        learned = sum(self._learn(rec) for rec in facts)
        if learned:
            self.metrics.reconciliations.labels("recalled_from_memo").inc(learned)
            log.info("learned %d facts from the memo queue", learned,
                     extra={"shard": shard, "facts": len(facts)})

    def _learn(self, rec: TrackOrder) -> bool:
        """Fold one fact into the registry (no renewal: its record circulates anyway)."""
        if rec.expires_at is not None and rec.expires_at < time.time():
            return False
        cid = rec.client_order_id
        entry = self.entries.get(cid)
        if entry is None:
            if cid in self._terminal_at:
                return False
            self.add(entry_from_record(rec))
            return True
        if entry.terminal or not entry.merge(rec):
            return False
        self.exposure.update(entry)
        if entry.live:  # an open order that a tombstone wants canceled now
            self._ensure_follower(entry.ref.account, entry.ref.exchange)
        return True

    # -- the carousel --------------------------------------------------------------
    async def on_record(self, rec: TrackOrder | TrackBatch, shard: int) -> None:
        """Records came round. Refresh the registry; renew those that are not spare copies.
        Returns once the fresh copies are confirmed, so the caller may ack the old message."""
        self.warmth.seen(shard)
        self._prune()
        records = rec.records if isinstance(rec, TrackBatch) else (rec,)
        late = self._late_cancels(records)
        if late:  # confirmed before the record's message is acked, and only then known
            await self.publisher.publish([e for _, _, e in late])
            for entry, cancel_id, _ in late:
                if cancel_id not in entry.cancel_commands:
                    entry.cancel_commands.append(cancel_id)
        renew = [e for e in (self._refresh(r, shard) for r in records) if e is not None]
        if renew:
            await self._renewals.renew(renew)

    def _refresh(self, rec: TrackOrder, shard: int) -> Entry | None:
        """Fold one record into the registry; the entry if its record must be renewed."""
        cid = rec.client_order_id
        entry = self.entries.get(cid)
        if entry is not None and entry.terminal:
            return None
        if entry is None and cid in self._terminal_at:
            return None  # done with it; let the copy go
        if rec.phase in ("tombstone", "done") and rec.expires_at is not None \
                and rec.expires_at < time.time():
            if entry is None or entry.phase in ("tombstone", "done"):
                self._drop(cid)
                return None
        if entry is None:
            entry = self.add(entry_from_record(rec))
            log.info("following an order from its record", extra={
                "client_order_id": cid, "shard": shard, "phase": rec.phase})
            news = True
        else:
            news = entry.merge(rec)
            if news:
                self.exposure.update(entry)
            if rec.exchange_order_id and rec.phase == "open" and entry.phase == "open":
                # as in entry_from_record: this record went out in one batch with the
                # order's OrderAccepted; without this, an entry whose own OrderAccepted was
                # never confirmed here would stay open but never polled
                entry.accepted.set()
            if news and entry.live:
                self._ensure_follower(entry.ref.account, entry.ref.exchange)
        if not news and time.monotonic() - entry.confirmed_at < self.cycle_s / 2:
            # a spare copy: one was confirmed lately (if that renewal failed, this copy is
            # the record's only one and must be renewed)
            self.metrics.reconciliations.labels("spare_record_dropped").inc()
            return None
        return entry

    def _late_cancels(self, records: Sequence[TrackOrder]) -> list[tuple[Entry, str, Event]]:
        """Cancels that joined an order which ended here meanwhile (an older copy of its
        record, without them, ended it; or it was never placed): their cancel_done."""
        from worker.orders.events import cancel_done
        from worker.orders.follow import cancel_ref

        late: dict[str, tuple[Entry, str, Event]] = {}
        for rec in records:
            entry = self.entries.get(rec.client_order_id)
            if entry is None or not (entry.terminal or entry.phase == "done"):
                continue
            for c in rec.cancel_commands:
                if c not in entry.cancel_commands and c not in late:
                    late[c] = (entry, c, cancel_done(cancel_ref(entry, c), entry.ref,
                                                     entry.final))
        return list(late.values())

    def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < min(1.0, self.cycle_s / 4):
            return
        self._pruned_at = now
        keep = TERMINAL_KEEP_CYCLES * self.cycle_s
        for cid, at in list(self._terminal_at.items()):
            if now - at > keep:
                del self._terminal_at[cid]
                self._drop(cid)
        stale = STALE_CYCLES * self.cycle_s
        for cid, e in list(self.entries.items()):
            if not e.terminal and now - e.renewed_at > stale:
                # nobody renewed it here for long: another worker owns its shard now
                log.info("dropping entry owned elsewhere", extra={"client_order_id": cid})
                self._drop(cid)
        self.exposure.rebuild(self.entries.values())

    # -- followers -----------------------------------------------------------------
    def _ensure_follower(self, account: str, exchange: str) -> None:
        key = (account, exchange)
        task = self._followers.get(key)
        if (task is None or task.done()) and not self.closed:
            from worker.orders.follow import follow_account

            self._followers[key] = asyncio.create_task(
                follow_account(self, account, exchange), name=f"follow:{account}:{exchange}")

    def follower_done(self, account: str, exchange: str) -> bool:
        """Called by a follower about to exit: True if it really may (nothing live left)."""
        if self.live_entries(account, exchange):
            return False
        self._followers.pop((account, exchange), None)
        return True

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._followers.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._followers.clear()
