"""A shard's facts from its memo queue (worker.broker.memo, Tracker.recall): what a worker
that took the shard over must know before it decides, however late the records are."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from schemas import CancelDone, OrderRejected, RejectReason
from schemas.tracking import TrackOrder
from tests.conftest import cancel, place
from tests.unit.test_handlers import make
from worker.lab.testing import FakePublisher
from worker.orders.events import cancel_rejected, ref_of
from worker.orders.handlers import handle
from worker.orders.outcomes import answer
from worker.orders.registry import Entry
from worker.orders.tracker import Tracker
from worker.ports import ACK, Delivery, Deps


class CountingMemory:
    def __init__(self, source: FakePublisher) -> None:
        self.source, self.reads = source, 0

    async def recall(self, shard: int) -> Sequence[TrackOrder]:
        self.reads += 1
        return list(self.source.facts)


def successor(deps: Deps, memory: CountingMemory) -> tuple[Deps, FakePublisher]:
    """The worker that takes the shard over: same exchange, its own tracker and publisher."""
    pub = FakePublisher()
    tracker = Tracker(deps.settings, deps.exchanges, pub, deps.metrics, memory=memory)
    return Deps(deps.settings, deps.exchanges, pub, deps.metrics, tracker), pub


async def test_a_place_after_takeover_refuses_what_the_predecessor_tombstoned() -> None:
    deps_a, pub_a, paper = make()
    target = place(type="limit", price="50000", timeout_s=None)
    assert await handle(cancel(target.command_id), deps_a, Delivery()) == ACK
    assert [f.phase for f in pub_a.facts] == ["tombstone", "done"]  # both in the memo
    memory = CountingMemory(pub_a)
    deps_b, pub_b = successor(deps_a, memory)  # A's records are a backlog away
    deps_b.tracker.warmth.seen(0)  # the consumer: B's first message of shard 0
    assert await handle(target, deps_b, Delivery()) == ACK
    [refusal] = pub_b.events
    assert isinstance(refusal, OrderRejected)
    assert refusal.reason == RejectReason.CANCELED_BEFORE_PLACEMENT
    assert await paper.find_order(target.symbol, ref_of(target).client_order_id) is None
    assert await handle(place(), deps_b, Delivery()) == ACK
    assert memory.reads == 1  # once per takeover; a first delivery reads no more


async def test_a_copy_reads_again_and_repeats_the_remembered_refusal() -> None:
    deps_a, pub_a, _ = make(OW_RISK_MAX_NOTIONAL="10")
    big = place(amount="1")
    assert await handle(big, deps_a, Delivery()) == ACK  # refused by risk, remembered
    [first] = pub_a.events
    memory = CountingMemory(FakePublisher())  # B read its memo before A's refusal
    deps_b, pub_b = successor(deps_a, memory)
    deps_b.tracker.warmth.seen(0)
    assert await handle(place(), deps_b, Delivery()) == ACK
    memory.source = pub_a
    resent = Delivery(published_attempt=2)  # the client sent it again
    assert await handle(big, deps_b, resent) == ACK
    assert [e.event_id for e in pub_b.events if e.command_id == big.command_id] == [
        first.event_id]
    assert memory.reads == 2


async def test_a_confirmed_outcome_wins_over_an_unconfirmed_local_one() -> None:
    """Sim seed 21179: a zombie kept its own unconfirmed refusal (never published) over
    the outcome another worker had confirmed and published, and repeated its own."""
    deps, pub, _ = make()
    ref = ref_of(cancel("gone"))
    pub.fail_next = ConnectionError("confirm lost")
    with pytest.raises(ConnectionError):
        await answer(deps, ref, cancel_rejected(ref, RejectReason.RETRIES_EXHAUSTED, "mine"))
    local = deps.tracker.get(ref.client_order_id)
    assert local is not None and not local.durable
    theirs = cancel_rejected(ref, RejectReason.ORDER_NOT_FOUND, "confirmed elsewhere")
    record = Entry(ref=ref, phase="done", outcome=theirs,
                   expires_at=time.time() + 60).to_record()
    await deps.tracker.on_record(record, 0)
    assert local.outcome == theirs and local.durable


async def test_a_cancel_that_joined_an_order_never_placed_gets_its_outcome() -> None:
    deps, pub, _ = make()
    target = place()
    ref = ref_of(target)
    done = Entry(ref=ref, phase="done", expires_at=time.time() + 60)
    deps.tracker.add(done)  # concluded not_placed from an older copy of its record
    joined = Entry(ref=ref, phase="pending", cancel_commands=["x-late"]).to_record()
    await deps.tracker.on_record(joined, 0)
    [late] = [e for e in pub.events if e.command_id == "x-late"]
    assert isinstance(late, CancelDone) and late.order_status == "not_placed"
