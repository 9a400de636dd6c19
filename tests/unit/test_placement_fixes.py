"""Defects the placement simulation (tests/unit/test_placement_sim.py) found, one test
each; every one failed before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from schemas import Event, RejectReason, client_order_id
from schemas.tracking import TrackOrder
from tests.conftest import cancel, place
from tests.unit.fakes import ScriptedPaper
from worker.errors import AmbiguousOrderState, AuthError, TransientError
from worker.exchange.placement import PlacementPolicy
from worker.lab.testing import FakePublisher, StaticExchanges
from worker.metrics import Metrics
from worker.orders.events import ref_of
from worker.orders.handlers import handle
from worker.orders.registry import Entry
from worker.orders.tracker import Tracker
from worker.ports import Delivery, Deps
from worker.settings import ExchangeConfig, load_settings

FAST = {"OW_TRACK_POLL_S": "0.02", "OW_TRACK_CYCLE_S": "0.5", "OW_RETRY_INITIAL_S": "0.001",
        "OW_RETRY_MAX_TOTAL_S": "0.05", "OW_RECONCILE_DELAY_S": "0.001", "OW_FENCE_S": "0.05",
        "OW_MAX_CLOCK_SKEW_S": "0.05", "OW_INTAKE_BUDGET_S": "0.3",
        "OW_CANCEL_CONFIRM_S": "0.05"}


def make() -> tuple[Deps, FakePublisher, ScriptedPaper]:
    settings = load_settings(FAST)
    paper = ScriptedPaper("paper", ExchangeConfig(), tick_s=0.01,
                          placement=PlacementPolicy(lookups=2, lookup_delay_s=0))
    pub = FakePublisher()
    exchanges = StaticExchanges({"paper": paper})
    metrics = Metrics()
    return Deps(settings, exchanges, pub, metrics,
                Tracker(settings, exchanges, pub, metrics)), pub, paper


def kinds(pub: FakePublisher, command_id: str) -> list[str]:
    return [type(e).__name__ for e in pub.events if e.command_id == command_id]


async def until(pub: FakePublisher, pred: Callable[[list[Event]], bool]) -> None:
    for _ in range(300):
        if pred(pub.events):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out; events: {pub.kinds()}")


def lookups_fail(paper: ScriptedPaper) -> None:
    async def down(symbol: str, cid: str) -> None:
        raise TransientError("lookup: NetworkError")
    paper.find_order = down  # type: ignore[assignment,method-assign]


async def test_copy_of_a_finished_command_is_not_placed_again_by_a_lagging_lookup() -> None:
    deps, pub, paper = make()
    cmd = place()
    await handle(cmd, deps, Delivery())
    paper.hidden_lookups = 5  # the exchange's history lags behind the fill
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert paper.orders_for(client_order_id(cmd.account, cmd.command_id)) == 1
    assert kinds(pub, cmd.command_id) == ["OrderAccepted", "OrderFilled"]


async def test_redelivered_command_that_cannot_look_up_is_left_pending() -> None:
    """An earlier holder may have created it: OrderFailed(retries_exhausted) would lie."""
    deps, pub, paper = make()
    cmd = place()
    lookups_fail(paper)
    outcome = await handle(cmd, deps, Delivery(attempt=2, redelivered=True))
    assert outcome.action == "ack" and pub.events == []
    entry = deps.tracker.get(client_order_id(cmd.account, cmd.command_id))
    assert entry is not None and entry.phase == "pending"
    assert pub.records and pub.records[-1].phase == "pending"
    await deps.tracker.close()


async def test_fresh_copy_that_cannot_look_up_is_left_pending_too() -> None:
    """A copy of the command may have been placed by another delivery."""
    deps, pub, paper = make()
    lookups_fail(paper)
    cmd = place()
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert "OrderFailed" not in pub.kinds() and pub.records[-1].phase == "pending"
    await deps.tracker.close()


async def test_copy_of_a_pending_command_leaves_the_decision_to_the_tracker() -> None:
    deps, pub, paper = make()
    cmd = place()
    paper.create_faults += [(AmbiguousOrderState("timeout"), False)] * 2
    await handle(cmd, deps, Delivery())  # both creates ambiguous: handed over as pending
    lookups_fail(paper)
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert "OrderFailed" not in pub.kinds() and "OrderRejected" not in pub.kinds()
    await deps.tracker.close()


async def test_tombstone_arriving_during_the_settle_wait_stops_the_create() -> None:
    deps, pub, paper = make()
    cmd = place()
    ref = ref_of(cmd)

    async def cancel_record_arrives() -> None:
        await asyncio.sleep(0.01)
        deps.tracker.add(Entry(ref=ref, phase="tombstone", expires_at=None))

    arrive = asyncio.create_task(cancel_record_arrives())
    await handle(cmd, deps, Delivery(attempt=2, redelivered=True))
    await arrive
    assert paper.created == 0
    assert pub.events[-1].reason == RejectReason.CANCELED_BEFORE_PLACEMENT  # type: ignore[union-attr]


async def test_cancel_the_exchange_does_not_confirm_gets_one_outcome() -> None:
    deps, pub, paper = make()
    cmd = place(type="limit", price="50000", timeout_s=None)
    await handle(cmd, deps, Delivery())
    real_cancel = paper.cancel_order

    async def down(symbol: str, order_id: str) -> None:
        raise TransientError("cancel: NetworkError")
    paper.cancel_order = down  # type: ignore[assignment,method-assign]
    cxl = cancel(cmd.command_id)
    assert (await handle(cxl, deps, Delivery())).action == "ack"
    assert kinds(pub, cxl.command_id) == []  # joined the order; the tracker carries on
    paper.cancel_order = real_cancel  # type: ignore[method-assign]
    await until(pub, lambda ev: any(e.command_id == cxl.command_id for e in ev))
    await asyncio.sleep(0.1)
    assert kinds(pub, cxl.command_id) == ["CancelDone"]
    assert kinds(pub, cmd.command_id) == ["OrderAccepted", "OrderCanceled"]
    await deps.tracker.close()


async def test_record_of_an_open_order_marks_its_unconfirmed_entry_accepted() -> None:
    """Else the entry is open but never polled (polling waits for OrderAccepted)."""
    deps, _, _ = make()
    ref = ref_of(place())
    for phase, order_id in (("pending", None), ("open", "P1")):
        entry = deps.tracker.add(Entry(ref=ref, phase=phase, amount="0.01",
                                       order_id=order_id))
        rec = TrackOrder(command_id=ref.command_id, account=ref.account,
                         exchange=ref.exchange, symbol=ref.symbol,
                         client_order_id=ref.client_order_id, phase="open",
                         exchange_order_id="P1", amount=str(Decimal("0.01")))
        await deps.tracker.on_record(rec, 0)
        assert entry.phase == "open" and entry.accepted.is_set()
        deps.tracker.entries.clear()
    await deps.tracker.close()


async def test_a_local_merge_never_marks_an_entry_accepted() -> None:
    deps, pub, _ = make()
    cmd = place()
    pub.fail_next = ConnectionError("confirm lost")
    with pytest.raises(ConnectionError):
        await handle(cmd, deps, Delivery())
    pub.fail_next = ConnectionError("confirm lost")
    with pytest.raises(ConnectionError):
        await handle(cmd, deps, Delivery(attempt=2, redelivered=True))
    assert (await handle(cmd, deps, Delivery(attempt=3, redelivered=True))).action == "ack"
    assert kinds(pub, cmd.command_id) == ["OrderAccepted", "OrderFilled"]


async def test_cancel_joined_before_a_redelivered_place_finishes_gets_cancel_done(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.orders import cancel as cancel_mod

    monkeypatch.setattr(cancel_mod, "ACCEPT_WAIT_S", 0.01)
    deps, pub, paper = make()
    cmd = place()
    pub.fail_next = ConnectionError("confirm lost")  # created, OrderAccepted unconfirmed
    with pytest.raises(ConnectionError):
        await handle(cmd, deps, Delivery())

    async def down(symbol: str, order_id: str) -> None:
        raise TransientError("cancel: NetworkError")
    paper.cancel_order = down  # type: ignore[assignment,method-assign]
    cxl = cancel(cmd.command_id)
    await handle(cxl, deps, Delivery())  # joins the order, which is not accepted yet
    assert (await handle(cmd, deps, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert kinds(pub, cxl.command_id) == ["CancelDone"]
    assert pub.events[-1].order_status == "filled"  # type: ignore[union-attr]
    await deps.tracker.close()


async def test_redelivered_command_whose_lookup_is_refused_is_left_pending() -> None:
    deps, pub, paper = make()

    async def refused(symbol: str, cid: str) -> None:
        raise AuthError("-2015 Invalid API-key, IP, or permissions")
    paper.find_order = refused  # type: ignore[assignment,method-assign]
    cmd = place()
    assert (await handle(cmd, deps, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert "OrderRejected" not in pub.kinds() and pub.records[-1].phase == "pending"
    await deps.tracker.close()
