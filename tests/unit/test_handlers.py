from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgspec
import pytest

from schemas import PlaceOrder, RejectReason, client_order_id
from tests.conftest import cancel, place
from tests.unit.fakes import ScriptedPaper
from worker.errors import AmbiguousOrderState, TransientError
from worker.exchange.placement import PlacementPolicy
from worker.lab.testing import FakePublisher, StaticExchanges
from worker.metrics import Metrics
from worker.orders.handlers import handle
from worker.ports import Delivery, Deps
from worker.settings import ExchangeConfig, load_settings

FAST = {"OW_POLL_INTERVAL_S": "0.02", "OW_RETRY_INITIAL_S": "0.001",
        "OW_RETRY_MAX_TOTAL_S": "0.2", "OW_RECONCILE_DELAY_S": "0.001"}


def make(fill_ratio: str = "1", **env: str) -> tuple[Deps, FakePublisher, ScriptedPaper]:
    settings = load_settings({**FAST, **env})
    paper = ScriptedPaper("paper", ExchangeConfig(paper_fill_ratio=Decimal(fill_ratio)),
                          tick_s=0.01, placement=PlacementPolicy(lookups=2, lookup_delay_s=0))
    pub = FakePublisher()
    return Deps(settings, StaticExchanges({"paper": paper}), pub, Metrics()), pub, paper


async def test_market_order_accepted_then_filled() -> None:
    deps, pub, _ = make()
    outcome = await handle(place(), deps, Delivery())
    assert outcome.action == "ack"
    assert pub.kinds() == ["OrderAccepted", "OrderFilled"]
    filled = pub.events[-1]
    assert filled.filled == Decimal("0.01") and filled.average_price and filled.fee > 0
    assert [e.sequence for e in pub.events] == [0, 1_000_001]


async def test_partial_fills_publish_progress_with_rising_sequence() -> None:
    deps, pub, _ = make(fill_ratio="0.25")
    assert (await handle(place(amount="1"), deps, Delivery())).action == "ack"
    kinds = pub.kinds()
    assert kinds[0] == "OrderAccepted" and kinds[-1] == "OrderFilled"
    assert kinds.count("OrderPartiallyFilled") >= 2
    seqs = [e.sequence for e in pub.events]
    assert seqs == sorted(seqs) and len(set(e.event_id for e in pub.events)) == len(seqs)


async def test_limit_order_times_out_and_is_canceled() -> None:
    deps, pub, paper = make()
    cmd = place(type="limit", price="50000", timeout_s=0.2)
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert pub.kinds() == ["OrderAccepted", "OrderCanceled"]
    assert not await paper.get_open_orders()


async def test_cancel_command_cancels_resting_order() -> None:
    deps, pub, paper = make()
    cmd = place(type="limit", price="50000", timeout_s=60)
    cid = client_order_id(cmd.account, cmd.command_id)
    await paper.execute_trade(_req(cmd, cid))
    assert (await handle(cancel(cmd.command_id), deps, Delivery())).action == "ack"
    assert pub.kinds() == ["OrderCanceled"]
    assert pub.events[0].command_id == cmd.command_id


async def test_cancel_of_unknown_order_is_rejected() -> None:
    deps, pub, _ = make()
    assert (await handle(cancel("nope"), deps, Delivery())).action == "ack"
    assert pub.events[0].reason == RejectReason.ORDER_NOT_FOUND  # type: ignore[union-attr]


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


async def test_position_limit() -> None:
    deps, pub, _ = make(OW_RISK_MAX_POSITION="10.005")
    await handle(place(amount="0.01"), deps, Delivery())
    assert pub.events[-1].reason == RejectReason.RISK_POSITION_LIMIT  # type: ignore[union-attr]


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
    # a crash before ack: the same command comes again, even long after (stale)
    again = place(command_id=cmd.command_id, created_at=cmd.created_at - timedelta(hours=2))
    assert (await handle(again, deps, Delivery(attempt=2, redelivered=True))).action == "ack"
    assert paper.created == 1
    assert [e.event_id for e in pub.events[len(first):]] == [e.event_id for e in first]


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


async def test_transient_polling_error_retries_then_gives_up_on_final_delivery() -> None:
    deps, pub, paper = make()

    def boom() -> None:
        raise TransientError("503")

    paper.on_get = boom
    cmd = place(type="limit", price="50000", timeout_s=5)
    assert (await handle(cmd, deps, Delivery())).action == "retry"
    outcome = await handle(cmd, deps, Delivery(attempt=6, final_attempt=True))
    assert outcome.action == "dead_letter"
    assert pub.kinds()[-1] == "OrderFailed"
    assert paper.created == 1


async def test_publish_failure_means_retry_and_redelivery_dedupes() -> None:
    deps, pub, paper = make()
    cmd = place()
    pub.fail_next = ConnectionError("broker gone")
    assert (await handle(cmd, deps, Delivery())).action == "retry"
    assert (await handle(cmd, deps, Delivery(attempt=2))).action == "ack"
    assert paper.created == 1 and pub.kinds() == ["OrderAccepted", "OrderFilled"]


def _req(cmd, cid):  # type: ignore[no-untyped-def]
    from worker.exchange.models import OrderRequest

    return OrderRequest(symbol=cmd.symbol, side=cmd.side, type=cmd.type,
                        amount=Decimal(cmd.amount), price=Decimal(cmd.price),
                        client_order_id=cid)


async def test_permanent_error_after_acceptance_is_a_failure_not_a_rejection() -> None:
    from worker.errors import AuthError

    deps, pub, paper = make()

    def revoked() -> None:
        raise AuthError("API key revoked")

    paper.on_get = revoked
    outcome = await handle(place(type="limit", price="50000", timeout_s=5), deps, Delivery())
    assert outcome.action == "dead_letter" and "unfollowable" in outcome.reason
    assert pub.kinds() == ["OrderAccepted", "OrderFailed"]
    assert pub.events[-1].reason == RejectReason.EXCHANGE_AUTH  # type: ignore[union-attr]


async def test_briefly_invisible_order_is_waited_for() -> None:
    from worker.errors import OrderNotFound

    deps, pub, paper = make()
    misses = iter([True, True, False])

    def flaky() -> None:
        if next(misses, False):
            raise OrderNotFound("-2013 Order does not exist.")

    paper.on_get = flaky
    outcome = await handle(place(type="limit", price="50000", timeout_s=0.3), deps, Delivery())
    assert outcome.action == "ack" and pub.kinds() == ["OrderAccepted", "OrderCanceled"]


async def test_redelivery_waits_out_a_create_still_in_flight() -> None:
    deps, _, paper = make()
    paper.settle_s = 0.2  # type: ignore[misc]
    cmd = place()
    cid = client_order_id(cmd.account, cmd.command_id)
    await paper.execute_trade(_req_market(cmd, cid))  # the dead worker's create, landing late
    paper.hidden_lookups = 1  # ...not visible to the first lookup
    started = asyncio.get_running_loop().time()
    outcome = await handle(cmd, deps, Delivery(attempt=2, redelivered=True))
    assert outcome.action == "ack"
    assert paper.orders_for(cid) == 1  # adopted after the settle window, not placed again
    assert asyncio.get_running_loop().time() - started >= 0.2


def _req_market(cmd, cid):  # type: ignore[no-untyped-def]
    from worker.exchange.models import OrderRequest

    return OrderRequest(symbol=cmd.symbol, side=cmd.side, type="market",
                        amount=Decimal(cmd.amount), client_order_id=cid)
