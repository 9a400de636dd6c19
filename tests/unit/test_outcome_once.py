"""Issue 10: one outcome per command, also for its copies, and a cancel's "not found"
only while the worker holds the command (worker.orders.outcomes, worker.orders.cancel)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from schemas import Event, RejectReason, client_order_id
from schemas.tracking import TrackOrder
from tests.conftest import cancel, place
from tests.unit.test_fencing import FakeChannel, FakeMessage
from tests.unit.test_handlers import another_worker, kinds_of, make
from worker.broker.fence import BrokerFences
from worker.errors import TransientError
from worker.lab.testing import FakePublisher, StaticExchanges
from worker.orders.events import OrderRef
from worker.orders.handlers import handle
from worker.orders.tracker import Tracker
from worker.ports import Delivery, Deps


class LostConfirm(FakePublisher):
    """The broker stores the next batch with events, but its confirm never arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next_event_confirm = False

    async def publish(self, events: Sequence[Event], records: Sequence[TrackOrder] = (),
                      *, facts: Sequence[TrackOrder] = ()) -> None:
        await super().publish(events, records, facts=facts)
        if events and self.lose_next_event_confirm:
            self.lose_next_event_confirm = False
            raise ConnectionError("confirm timed out")


class Unreachable:
    """The exchange as a cancel sees it during an outage: every read fails."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down = inner, True

    async def find_order(self, *a: Any) -> Any:
        if self.down:
            raise TransientError("find_order: NetworkError")
        return await self.inner.find_order(*a)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LateAnswer:
    """A's lookups: the exchange answers at once, the answer reaches A much later."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    async def find_order(self, *a: Any) -> Any:
        found = await self.inner.find_order(*a)
        await asyncio.sleep(self.delay_s)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def warm(tracker: Tracker) -> None:
    """The tracker has owned shard 0 for a while: its registry is complete."""
    now = time.monotonic()
    for back in (3.0, 2.5, 2.0, 1.5, 1.0, 0.5, 0.0):
        tracker.warmth.seen(0, now - back)


def distinct_outcomes(pub: FakePublisher, command_id: str) -> set[str]:
    return {e.event_id for e in pub.events if e.command_id == command_id}


async def test_a_cancel_copy_repeats_its_rejection_instead_of_a_second_outcome() -> None:
    """Sim seed 2428: the cancel's lookups fail, its cancel_rejected(retries_exhausted) is
    stored but not confirmed; the copy finds the target placed meanwhile. Before: the copy
    joined it and the tracker published cancel_done, a second, different outcome."""
    deps, _, paper = make()
    pub = LostConfirm()
    outage = Unreachable(paper)
    deps = Deps(deps.settings, StaticExchanges({"paper": outage}),  # type: ignore[dict-item]
                pub, deps.metrics, Tracker(deps.settings, deps.exchanges, pub, deps.metrics))
    warm(deps.tracker)
    target = place(type="limit", price="50000")
    cxl = cancel(target.command_id)
    pub.lose_next_event_confirm = True
    try:
        await handle(cxl, deps, Delivery())
        raise AssertionError("the unconfirmed publish must fail the delivery")
    except ConnectionError:
        pass
    assert kinds_of(pub, cxl.command_id) == ["CancelRejected"]
    outage.down = False
    assert (await handle(target, deps, Delivery())).action == "ack"
    assert (await handle(cxl, deps, Delivery(attempt=2, redelivered=True))).action == "ack"
    await asyncio.sleep(0.3)  # the tracker would have published cancel_done by now
    assert len(distinct_outcomes(pub, cxl.command_id)) == 1
    assert pub.events[-1].reason == RejectReason.RETRIES_EXHAUSTED  # type: ignore[union-attr]
    await deps.tracker.close()


async def test_a_copy_of_a_refused_place_repeats_the_refusal() -> None:
    """A sell refused for the balance; its client re-sends it once the balance is there.
    Before: the copy was judged afresh and placed an order the first copy had rejected."""
    deps, pub, paper = make()
    paper._balances["BTC"] = Decimal("1")
    cmd = place(side="sell", amount="3")
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    paper._balances["BTC"] = Decimal("5")
    assert (await handle(cmd, deps, Delivery(published_attempt=2))).action == "ack"
    assert paper.created == 0
    assert kinds_of(pub, cmd.command_id) == ["OrderRejected", "OrderRejected"]
    assert len(distinct_outcomes(pub, cmd.command_id)) == 1
    await deps.tracker.close()


async def test_a_remembered_outcome_survives_the_worker() -> None:
    """Worker A refused the command and died; worker B learns it from the record."""
    deps_a, pub_a, paper = make()
    paper._balances["BTC"] = Decimal("1")
    cmd = place(side="sell", amount="3")
    await handle(cmd, deps_a, Delivery())
    (record,) = pub_a.records
    assert record.phase == "done" and record.outcome == pub_a.events[0]
    deps_b, pub_b, _ = make()
    deps_b = Deps(deps_b.settings, deps_a.exchanges, pub_b, deps_b.metrics, deps_b.tracker)
    warm(deps_b.tracker)
    await deps_b.tracker.on_record(record, 0)
    paper._balances["BTC"] = Decimal("5")
    assert (await handle(cmd, deps_b, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert paper.created == 0 and pub_b.events == pub_a.events
    await deps_a.tracker.close()
    await deps_b.tracker.close()


async def test_a_zombie_cancel_publishes_no_not_found() -> None:
    """Sim seed 2745 (unfenced): A's cancel looks up while the broker has already given
    the shard to B; A's lookup finds nothing because B holds the PlaceOrder. Before: A
    published cancel_rejected(order_not_found) and a tombstone for an order B placed."""
    deps_b, _, paper = make()
    pub_a = FakePublisher()
    slow = StaticExchanges({"paper": LateAnswer(paper, 0.3)})  # type: ignore[dict-item]
    deps_a = another_worker(deps_b, slow, pub_a)
    fences = BrokerFences(prefetch=32, timeout_s=1.0)
    chan_a = FakeChannel()
    target = place(type="limit", price="50000")
    cxl = cancel(target.command_id)
    warm(deps_a.tracker)
    a = asyncio.create_task(handle(cxl, deps_a, Delivery(
        fence=fences.for_message(FakeMessage(chan_a)))))
    await asyncio.sleep(0.05)
    chan_a.is_closed = True  # the broker lost A and gave the shard to B, which places it
    await handle(target, deps_b, Delivery())
    out_a = await a
    assert out_a.action == "retry" and pub_a.events == [] and pub_a.records == []
    assert deps_a.tracker.get(client_order_id(target.account, target.command_id)) is None
    await deps_a.tracker.close()
    await deps_b.tracker.close()


async def test_a_copy_after_not_placed_repeats_it_on_another_worker() -> None:
    """Sim seed 9170 (with a first version of this change): the tracker confirmed the order
    absent and published OrderFailed(not_placed); a copy of the command reached another
    worker, which knew nothing of it and placed the order. Now the outcome rides on the
    entry's record, so the other worker repeats it."""
    from tests.unit.test_handlers import until
    from worker.errors import AmbiguousOrderState

    deps_a, pub_a, paper = make()
    paper.create_faults.append((AmbiguousOrderState("reset"), False))
    paper.create_faults.append((AmbiguousOrderState("reset"), False))
    cmd = place()
    assert (await handle(cmd, deps_a, Delivery())).action == "ack"
    await until(pub_a, lambda ev: bool(ev))
    assert pub_a.kinds() == ["OrderFailed"]
    record = pub_a.records[-1]
    assert record.phase == "done" and record.outcome == pub_a.events[0]
    deps_b, pub_b, _ = make()
    deps_b = Deps(deps_b.settings, deps_a.exchanges, pub_b, deps_b.metrics, deps_b.tracker)
    warm(deps_b.tracker)
    await deps_b.tracker.on_record(record, 0)
    assert (await handle(cmd, deps_b, Delivery(published_attempt=2))).action == "ack"
    assert paper.created == 0 and pub_b.events == pub_a.events[:1]
    await deps_a.tracker.close()
    await deps_b.tracker.close()


async def test_a_record_whose_renewal_failed_is_renewed_when_it_comes_back() -> None:
    """Sim seed 18849: the renewal of a record that came round was not confirmed, the
    record message was handed back and came again at once, and was dropped as a spare
    copy (the entry looked renewed): the order's only record was gone."""
    deps, pub, _ = make()
    record = TrackOrder(command_id="c1", account="acct", exchange="paper", symbol="BTC/USDT",
                        client_order_id=client_order_id("acct", "c1"), phase="open",
                        exchange_order_id="X1", side="buy", type="limit", amount="1")
    pub.fail_next = ConnectionError("confirm timed out")
    try:
        await deps.tracker.on_record(record, 0)
        raise AssertionError("an unconfirmed renewal must fail the record's delivery")
    except ConnectionError:
        pass
    await deps.tracker.on_record(record, 0)  # the same message, redelivered
    assert pub.records == [record]
    await deps.tracker.close()


async def test_a_pending_entry_never_made_durable_is_not_concluded_absent() -> None:
    """Sim seed 10094 (unfenced): the hand-over's publish failed, so the command went back
    to the broker; this worker's tracker still had the entry and, once the window passed,
    published order_failed(not_placed) while the command's next holder placed it."""
    from worker.orders.follow import resolve_pending
    from worker.orders.registry import Entry

    deps, pub, paper = make()
    ref = OrderRef(command_id="c2", account="acct", exchange="paper", symbol="BTC/USDT",
                   client_order_id=client_order_id("acct", "c2"))
    entry = deps.tracker.add(Entry(ref=ref, phase="pending", side="buy", type="market",
                                   amount="0.01", sent_before=time.time() - 3600))
    await resolve_pending(deps.tracker, paper, entry)
    assert pub.events == [] and entry.phase == "pending"
    await deps.tracker.persist([entry])  # durable: now the tracker owns the doubt
    await resolve_pending(deps.tracker, paper, entry)
    assert pub.kinds() == ["OrderFailed"] and entry.phase == "done"
    await deps.tracker.close()
