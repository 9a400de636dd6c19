"""A CancelOrder copy without a symbol is deferred instead of answering "not found"
(worker.orders.cancel): chaos gave 2-3 cancels per 3000-order run a second outcome when a
copy, on a worker whose registry had not seen the record yet, listed the open orders and
missed the order its first handling had canceled."""

from __future__ import annotations

from schemas import CancelDone
from tests.conftest import cancel, place
from tests.unit.test_handlers import another_worker, make
from worker.lab.testing import FakePublisher
from worker.orders import cancel as cancel_mod
from worker.orders.handlers import handle
from worker.ports import ACK, DEFER, Delivery


async def test_a_cancel_copy_without_symbol_goes_round_and_repeats_its_outcome() -> None:
    deps_a, pub_a, _ = make()
    target = place(type="limit", price="50000", timeout_s=None)
    await handle(target, deps_a, Delivery())
    cxl = cancel(target.command_id, symbol=None)
    assert await handle(cxl, deps_a, Delivery()) == ACK  # A cancels it, then dies unacked
    [first] = [e for e in pub_a.events if e.command_id == cxl.command_id]
    assert isinstance(first, CancelDone) and first.order_status == "canceled"
    # B took the shard over; A's records (the order's, the cancel's remembered outcome)
    # are still behind the backlog
    pub_b = FakePublisher()
    deps_b = another_worker(deps_a, deps_a.exchanges, pub_b)
    tracker_b = deps_b.tracker
    copy = Delivery(redelivered=True, attempt=2)
    assert await handle(cxl, deps_b, copy) == DEFER  # before: cancel_rejected(not_found)
    assert not pub_b.events
    for record in pub_a.records:  # they come round ahead of the deferred copy
        await tracker_b.on_record(record, 0)
    assert await handle(cxl, deps_b, Delivery(redelivered=True, deferrals=1)) == ACK
    assert [e.event_id for e in pub_b.events if e.command_id == cxl.command_id] == [
        first.event_id]  # the same outcome again, never a second one


async def test_a_cancel_copy_decides_after_its_deferrals_and_a_first_delivery_at_once(
        ) -> None:
    deps, pub, _ = make()
    cxl = cancel("never-placed", symbol=None)
    assert await handle(cxl, deps, Delivery(redelivered=True)) == DEFER
    last = Delivery(redelivered=True, deferrals=cancel_mod.MAX_DEFERRALS)
    assert await handle(cxl, deps, last) == ACK
    assert [type(e).__name__ for e in pub.events] == ["CancelRejected"]
    other = cancel("never-placed-either", symbol=None)
    assert await handle(other, deps, Delivery()) == ACK  # a first delivery decides
    with_symbol = cancel("never-placed-too")
    assert await handle(with_symbol, deps, Delivery(redelivered=True)) == ACK


async def test_a_tombstoned_copy_looks_its_order_up_before_refusing() -> None:
    """Sim seed 434 (no_symbol): A filled a market order and died before its ack; on B a
    cancel without a symbol saw no open order, answered "not found" and left a
    tombstone; the PlaceOrder's copy was refused (canceled_before_placement) although it
    had filled: two outcomes. Now a tombstoned copy looks the order up first."""
    deps_a, pub_a, _ = make()
    pub_b = FakePublisher()
    deps_b = another_worker(deps_a, deps_a.exchanges, pub_b)
    order = place()
    await handle(order, deps_a, Delivery())
    filled = [e.event_id for e in pub_a.events if e.command_id == order.command_id]
    assert len(filled) == 2  # accepted, filled
    assert await handle(cancel(order.command_id, symbol=None), deps_b, Delivery()) == ACK
    assert await handle(order, deps_b, Delivery(redelivered=True, attempt=2)) == ACK
    again = [e for e in pub_b.events if e.command_id == order.command_id]
    assert [e.event_id for e in again] == filled, [type(e).__name__ for e in again]
    fresh = place()  # a first delivery behind its cancel's tombstone is still refused
    await handle(cancel(fresh.command_id, symbol=None), deps_b, Delivery())
    assert await handle(fresh, deps_b, Delivery()) == ACK
    assert [type(e).__name__ for e in pub_b.events if e.command_id == fresh.command_id] == [
        "OrderRejected"]


async def test_a_deferred_cancel_copy_leaves_a_tombstone_before_it_goes() -> None:
    """Review of the deferral: the cancel ran before its PlaceOrder (queued behind it),
    its first handling promised "it will not be placed later" and died; a copy deferred
    without a tombstone let the PlaceOrder overtake it and be placed."""
    deps, pub, paper = make()
    target = place()
    cxl = cancel(target.command_id, symbol=None)
    assert await handle(cxl, deps, Delivery(redelivered=True)) == DEFER
    assert [r.phase for r in pub.records] == ["tombstone"] and not pub.events
    assert await handle(target, deps, Delivery()) == ACK  # it overtakes the deferred copy
    assert [type(e).__name__ for e in pub.events if e.command_id == target.command_id] == [
        "OrderRejected"]
    assert paper.created == 0


async def test_a_tombstoned_copy_that_cannot_look_keeps_the_refusal() -> None:
    """A tombstoned PlaceOrder copy whose lookups fail sent no create: it repeats the
    tombstone's refusal instead of going pending (and later not_placed, a second,
    different outcome)."""
    from tests.unit.test_outcome_once import Unreachable
    from worker.lab.testing import StaticExchanges

    deps0, pub, paper = make()
    outage = Unreachable(paper)
    exchanges = StaticExchanges({"paper": outage})  # type: ignore[dict-item]
    deps = another_worker(deps0, exchanges, pub)
    target = place()
    outage.down = False
    await handle(cancel(target.command_id), deps, Delivery())  # not found: tombstone
    outage.down = True
    assert await handle(target, deps, Delivery(redelivered=True, attempt=2)) == ACK
    assert [type(e).__name__ for e in pub.events if e.command_id == target.command_id] == [
        "OrderRejected"]
    assert not [r for r in pub.records if r.phase == "pending"] and paper.created == 0
