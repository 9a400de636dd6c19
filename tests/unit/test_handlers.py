"""The order lifecycle with fakes: intake ends at acceptance, the tracker does the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from schemas import Event, PlaceOrder, RejectReason, client_order_id
from tests.conftest import cancel, place
from tests.unit.fakes import ScriptedPaper
from worker.errors import AmbiguousOrderState, TransientError
from worker.exchange.models import OrderRequest
from worker.exchange.placement import PlacementPolicy
from worker.lab.testing import FakePublisher, StaticExchanges
from worker.metrics import Metrics
from worker.orders.handlers import handle
from worker.orders.tracker import Tracker
from worker.ports import Delivery, Deps, EventPublisher, ExchangeProvider
from worker.settings import ExchangeConfig, load_settings

FAST = {"OW_TRACK_POLL_S": "0.02", "OW_TRACK_CYCLE_S": "0.5", "OW_RETRY_INITIAL_S": "0.001",
        "OW_RETRY_MAX_TOTAL_S": "0.2", "OW_RECONCILE_DELAY_S": "0.001", "OW_FENCE_S": "0.05",
        "OW_MAX_CLOCK_SKEW_S": "0.05", "OW_INTAKE_BUDGET_S": "0.5"}


def make(fill_ratio: str = "1", **env: str) -> tuple[Deps, FakePublisher, ScriptedPaper]:
    settings = load_settings({**FAST, **env})
    paper = ScriptedPaper("paper", ExchangeConfig(paper_fill_ratio=Decimal(fill_ratio)),
                          tick_s=0.01, placement=PlacementPolicy(lookups=2, lookup_delay_s=0))
    pub = FakePublisher()
    exchanges = StaticExchanges({"paper": paper})
    metrics = Metrics()
    tracker = Tracker(settings, exchanges, pub, metrics)
    return Deps(settings, exchanges, pub, metrics, tracker), pub, paper


def another_worker(deps: Deps, exchanges: ExchangeProvider, pub: EventPublisher) -> Deps:
    """A second worker: ``deps``' settings and metrics, its own publisher and a fresh
    tracker, both over ``exchanges``."""
    return Deps(deps.settings, exchanges, pub, deps.metrics,
                Tracker(deps.settings, exchanges, pub, deps.metrics))


async def until(pub: FakePublisher, pred: Callable[[list[Event]], bool],
                limit_s: float = 3.0) -> None:
    end = asyncio.get_running_loop().time() + limit_s
    while not pred(pub.events):
        assert asyncio.get_running_loop().time() < end, f"timed out; events: {pub.kinds()}"
        await asyncio.sleep(0.01)


def kinds_of(pub: FakePublisher, command_id: str) -> list[str]:
    return [type(e).__name__ for e in pub.events if e.command_id == command_id]


async def test_market_order_accepted_then_filled_in_one_batch() -> None:
    deps, pub, _ = make()
    outcome = await handle(place(), deps, Delivery())
    assert outcome.action == "ack"
    assert pub.kinds() == ["OrderAccepted", "OrderFilled"] and pub.records == []
    filled = pub.events[-1]
    assert filled.filled == Decimal("0.01") and filled.average_price and filled.fee > 0
    assert [e.sequence for e in pub.events] == [0, 1_000_001]


async def test_resting_order_is_acked_at_acceptance_and_followed_by_the_tracker() -> None:
    deps, pub, _paper = make(fill_ratio="0.25")
    cmd = place(amount="1")
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert pub.kinds()[0] == "OrderAccepted" and len(pub.records) == 1  # record with accepted
    await until(pub, lambda ev: type(ev[-1]).__name__ == "OrderFilled")
    kinds = pub.kinds()
    assert kinds.count("OrderPartiallyFilled") >= 2
    seqs = [e.sequence for e in pub.events]
    assert seqs == sorted(seqs) and len({e.event_id for e in pub.events}) == len(seqs)
    await deps.tracker.close()


async def test_gtc_limit_rests_without_timeout_and_timeout_s_cancels() -> None:
    deps, pub, paper = make()
    resting = place(type="limit", price="50000")
    timed = place(type="limit", price="50000", timeout_s=0.2)
    assert (await handle(resting, deps, Delivery())).action == "ack"
    assert (await handle(timed, deps, Delivery())).action == "ack"
    await until(pub, lambda ev: "OrderCanceled" in [type(e).__name__ for e in ev])
    await asyncio.sleep(0.3)
    assert kinds_of(pub, timed.command_id) == ["OrderAccepted", "OrderCanceled"]
    assert kinds_of(pub, resting.command_id) == ["OrderAccepted"]
    assert len(await paper.get_open_orders()) == 1
    await deps.tracker.close()


async def test_cancel_command_gets_its_own_outcome_and_cancels_the_order() -> None:
    deps, pub, paper = make()
    cmd = place(type="limit", price="50000")
    await handle(cmd, deps, Delivery())
    cxl = cancel(cmd.command_id)
    assert (await handle(cxl, deps, Delivery())).action == "ack"
    assert kinds_of(pub, cmd.command_id) == ["OrderAccepted", "OrderCanceled"]
    assert kinds_of(pub, cxl.command_id) == ["CancelDone"]
    done = pub.events[-1]
    assert done.order_status == "canceled"  # type: ignore[union-attr]
    assert done.client_order_id == client_order_id(cxl.account, cxl.command_id)
    assert done.target_client_order_id == client_order_id(cmd.account, cmd.command_id)  # type: ignore[union-attr]
    assert not await paper.get_open_orders()
    await deps.tracker.close()


async def test_cancel_of_a_filled_order_reports_the_fill() -> None:
    deps, pub, _ = make()
    cmd = place()
    await handle(cmd, deps, Delivery())
    cxl = cancel(cmd.command_id)
    await handle(cxl, deps, Delivery())
    assert pub.events[-1].order_status == "filled"  # type: ignore[union-attr]


async def test_unknown_cancel_is_rejected_and_tombstones_the_target() -> None:
    deps, pub, paper = make()
    target = place()
    cxl = cancel(target.command_id)
    assert (await handle(cxl, deps, Delivery())).action == "ack"
    assert kinds_of(pub, cxl.command_id) == ["CancelRejected"]
    assert pub.events[-1].reason == RejectReason.ORDER_NOT_FOUND  # type: ignore[union-attr]
    assert pub.events[-1].client_order_id != client_order_id(target.account, target.command_id)
    # the PlaceOrder shows up after all (reordered redelivery): it is never placed
    assert (await handle(target, deps, Delivery(redelivered=True))).action == "ack"
    assert paper.created == 0
    assert pub.events[-1].reason == RejectReason.CANCELED_BEFORE_PLACEMENT  # type: ignore[union-attr]
    ids = [e.event_id for e in pub.events]
    assert len(set(ids)) == len(ids)


async def test_cancel_right_behind_a_retrying_place_cancels_it() -> None:
    """The place retries inside its account turn, so the cancel cannot overtake it."""
    deps, pub, paper = make(OW_INTAKE_BUDGET_S="5")
    paper.create_faults.append((TransientError("429"), False))
    paper.create_faults.append((TransientError("503"), False))
    cmd = place(type="limit", price="50000")
    turn_of = deps.tracker  # noqa: F841  (the sequencer lives in the consumer; emulate it)
    from worker.orders.sequencer import AccountSequencer

    seq = AccountSequencer()
    d1, d2 = Delivery(turn=seq.enter(cmd.account)), Delivery(turn=seq.enter(cmd.account))
    cxl = cancel(cmd.command_id)
    outcomes = await asyncio.gather(handle(cmd, deps, d1), handle(cxl, deps, d2))
    assert [o.action for o in outcomes] == ["ack", "ack"]
    assert kinds_of(pub, cxl.command_id) == ["CancelDone"]
    assert pub.events[-1].order_status == "canceled"  # type: ignore[union-attr]
    assert paper.created == 1 and not await paper.get_open_orders()
    await deps.tracker.close()


@pytest.mark.parametrize("cmd, reason", [
    (place(amount="100"), RejectReason.RISK_MAX_NOTIONAL),
    (place(type="limit", side="buy", price="90000"), RejectReason.RISK_PRICE_PROTECTION),
    (place(price="50000"), RejectReason.RISK_PRICE_PROTECTION),  # market ref price moved
    (place(side="sell", amount="3", symbol="BTC/USDT"), RejectReason.RISK_BALANCE),
    (place(created_at=datetime.now(UTC) - timedelta(hours=1)), RejectReason.STALE),
    (place(exchange="nowhere"), RejectReason.UNKNOWN_EXCHANGE),
    (place(amount="0.00000001"), RejectReason.EXCHANGE_INVALID_ORDER),  # below min notional
])
async def test_rejections_publish_reason_and_ack(cmd: PlaceOrder, reason: RejectReason) -> None:
    if reason != RejectReason.STALE:  # built at collection: keep it fresh in a long run
        cmd = msgspec.structs.replace(cmd, created_at=datetime.now(UTC))
    deps, pub, paper = make(OW_RISK_MAX_POSITION="1000", OW_RISK_MAX_NOTIONAL="250000")
    paper._balances["BTC"] = Decimal("2")
    outcome = await handle(cmd, deps, Delivery())
    assert outcome.action == "ack"
    assert pub.kinds() == ["OrderRejected"]
    assert pub.events[0].reason == reason  # type: ignore[union-attr]
    assert paper.created == 0


async def test_position_limit_counts_resting_orders() -> None:
    deps, pub, _ = make(OW_RISK_MAX_POSITION="10.5")  # the paper account holds 10 BTC
    await handle(place(type="limit", price="50000", amount="0.4"), deps, Delivery())
    await handle(place(amount="0.2"), deps, Delivery())
    assert pub.events[-1].reason == RejectReason.RISK_POSITION_LIMIT  # type: ignore[union-attr]
    await deps.tracker.close()


async def test_invalid_command_is_rejected_and_dead_lettered() -> None:
    deps, pub, _ = make()
    outcome = await handle(place(type="limit"), deps, Delivery())  # limit without price
    assert outcome.action == "dead_letter" and "price" in outcome.reason
    assert pub.kinds() == ["OrderRejected"]


async def test_redelivered_command_adopts_existing_order_never_places_twice() -> None:
    deps, pub, paper = make()
    cmd = place()
    await handle(cmd, deps, Delivery())
    first = list(pub.events)
    # a crash before ack, on another worker: the same command comes again, even long after
    deps2, pub2, _ = make()
    deps2 = Deps(deps2.settings, deps.exchanges, pub2, deps2.metrics, deps2.tracker)
    again = place(command_id=cmd.command_id, created_at=cmd.created_at - timedelta(hours=2))
    assert (await handle(again, deps2, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert paper.created == 1
    assert [e.event_id for e in pub2.events] == [e.event_id for e in first]


async def test_ambiguous_create_that_was_accepted_is_adopted() -> None:
    deps, pub, paper = make()
    paper.create_faults.append((AmbiguousOrderState("timeout"), True))
    assert (await handle(place(), deps, Delivery())).action == "ack"
    assert paper.created == 1 and pub.kinds() == ["OrderAccepted", "OrderFilled"]


async def test_ambiguous_create_not_accepted_is_placed_once_more() -> None:
    deps, pub, paper = make()
    paper.create_faults.append((AmbiguousOrderState("reset"), False))
    assert (await handle(place(), deps, Delivery())).action == "ack"
    assert paper.created == 1 and pub.kinds() == ["OrderAccepted", "OrderFilled"]


async def test_unresolved_create_goes_to_the_tracker_as_pending_and_is_found_later() -> None:
    deps, pub, paper = make()
    paper.create_faults.append((AmbiguousOrderState("timeout"), True))
    paper.hidden_lookups = 100  # the exchange's order lookups lag far behind
    paper._placement = PlacementPolicy(lookups=2, lookup_delay_s=0, settle_s=5)
    cmd = place()
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert pub.kinds() == [] and pub.records[-1].phase == "pending"
    paper.hidden_lookups = 0
    await until(pub, lambda ev: [type(e).__name__ for e in ev] == ["OrderAccepted",
                                                                   "OrderFilled"])
    assert paper.created == 1
    await deps.tracker.close()


async def test_pending_order_confirmed_absent_fails_as_not_placed_never_rejected() -> None:
    deps, pub, paper = make()
    paper.create_faults.append((AmbiguousOrderState("reset"), False))
    paper.create_faults.append((AmbiguousOrderState("reset"), False))
    assert (await handle(place(), deps, Delivery())).action == "ack"
    await until(pub, lambda ev: bool(ev))
    assert pub.kinds() == ["OrderFailed"]
    assert pub.events[0].reason == RejectReason.NOT_PLACED  # type: ignore[union-attr]
    assert paper.created == 0
    await deps.tracker.close()


async def test_transient_refusals_past_the_budget_fail_cleanly() -> None:
    deps, pub, paper = make(OW_INTAKE_BUDGET_S="0.05")
    paper.create_faults.extend([(TransientError("429"), False)] * 20)
    outcome = await handle(place(), deps, Delivery())
    assert outcome.action == "dead_letter"
    assert pub.kinds() == ["OrderFailed"] and paper.created == 0


async def test_publish_failure_means_retry_and_redelivery_dedupes() -> None:
    deps, pub, paper = make()
    cmd = place()
    pub.fail_next = ConnectionError("broker gone")
    with pytest.raises(ConnectionError):
        await handle(cmd, deps, Delivery())
    assert (await handle(cmd, deps, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert paper.created == 1 and pub.kinds() == ["OrderAccepted", "OrderFilled"]


async def test_unfollowable_order_raises_an_alert_and_is_still_followed() -> None:
    from worker.errors import AuthError

    deps, pub, paper = make()
    revoked = [True]

    def get_hook() -> None:
        if revoked[0]:
            raise AuthError("API key revoked")

    paper.on_get = get_hook
    paper.on_open = get_hook
    cmd = place(type="limit", price="50000", timeout_s=0.1)
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    await until(pub, lambda ev: "OrderTrackingStalled" in [type(e).__name__ for e in ev])
    assert "OrderFailed" not in pub.kinds() and "OrderRejected" not in pub.kinds()
    revoked[0] = False  # the operator fixed the key
    await until(pub, lambda ev: type(ev[-1]).__name__ == "OrderCanceled")
    await deps.tracker.close()


async def test_briefly_invisible_order_is_waited_for() -> None:
    from worker.errors import OrderNotFound

    deps, pub, paper = make()
    misses = iter([True, True, False])

    def flaky() -> None:
        if next(misses, False):
            raise OrderNotFound("-2013 Order does not exist.")

    paper.on_get = flaky
    paper.hide_open = 3
    await handle(place(type="limit", price="50000", timeout_s=0.3), deps, Delivery())
    await until(pub, lambda ev: type(ev[-1]).__name__ == "OrderCanceled")
    assert "OrderTrackingStalled" not in pub.kinds()
    await deps.tracker.close()


async def test_redelivery_waits_out_a_create_still_in_flight() -> None:
    deps, _, paper = make()
    paper.settle_s = 0.2  # type: ignore[misc]
    cmd = place()
    cid = client_order_id(cmd.account, cmd.command_id)
    await paper.execute_trade(OrderRequest(symbol=cmd.symbol, side=cmd.side, type="market",
                                           amount=Decimal(cmd.amount), client_order_id=cid))
    paper.hidden_lookups = 1  # the dead worker's create lands late: not visible at first
    started = asyncio.get_running_loop().time()
    outcome = await handle(cmd, deps, Delivery(attempt=2, redelivered=True))
    assert outcome.action == "ack"
    assert paper.orders_for(cid) == 1  # adopted after settle window + fence, not placed again
    assert asyncio.get_running_loop().time() - started >= 0.2 + 0.05
