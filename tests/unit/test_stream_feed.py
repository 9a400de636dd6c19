"""The stream feed on the in-memory OrderStream fake: duplicated, stale and late updates
publish nothing twice; a broken stream hands over to REST; stream and REST agree on
event ids."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest

from schemas import OrderFilled, OrderPartiallyFilled, client_order_id
from worker.errors import TransientError
from worker.exchange.models import OrderRequest, OrderState
from worker.lab.testing import FakePublisher, StaticExchanges, StreamingPaper
from worker.metrics import Metrics
from worker.orders.events import OrderRef, progress
from worker.orders.tracker import Tracker
from worker.settings import load_settings


async def _until(cond: object, within: float = 3.0) -> None:
    for _ in range(int(within / 0.01)):
        if callable(cond) and cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


Setup = tuple[StreamingPaper, Tracker, FakePublisher, OrderRef, OrderState]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    paper = StreamingPaper(scripted=True)
    pub = FakePublisher()
    tracker = Tracker(load_settings({}, track_poll_s=0.05, stream_reconcile_s=30),
                      StaticExchanges({"paper": paper}), pub, Metrics())
    cid = client_order_id("a1", "c1")
    state = await paper.create_order(OrderRequest(
        symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.004"),
        price=Decimal("50000"), client_order_id=cid))
    ref = OrderRef(command_id="c1", account="a1", exchange="paper", symbol="BTC/USDT",
                   client_order_id=cid)
    entry = tracker.add(tracker.open_entry(ref, state, deadline_at=None, price="50000"))
    entry.accepted.set()
    yield paper, tracker, pub, ref, state
    await tracker.close()


def _at(state: OrderState, filled: str, status: str = "open") -> OrderState:
    f = Decimal(filled)
    return msgspec.structs.replace(state, filled=f, remaining=state.amount - f,
                                   status=status, average=Decimal("50000"),  # type: ignore[arg-type]
                                   fees={"USDT": Decimal("0.1")} if status != "open" else {})


async def test_duplicates_and_stale_updates_publish_once(setup: Setup) -> None:
    paper, _, pub, ref, state = setup
    paper.push([])  # connected
    for filled in ("0.002", "0.002", "0.001", "0.003"):  # a duplicate, then a stale one
        paper.push(_at(state, filled))
    paper.push(_at(state, "0.004", "closed"))
    paper.push(_at(state, "0.004", "closed"))  # duplicated terminal
    paper.push(_at(state, "0.003"))  # late, after the terminal
    await _until(lambda: any(isinstance(e, OrderFilled) for e in pub.events))
    await asyncio.sleep(0.2)
    fills = [(type(e).__name__, e.filled) for e in pub.events
             if isinstance(e, OrderFilled | OrderPartiallyFilled)]
    assert fills == [("OrderPartiallyFilled", Decimal("0.002")),
                     ("OrderPartiallyFilled", Decimal("0.003")),
                     ("OrderFilled", Decimal("0.004"))]
    # the same state from REST would carry the same event id
    assert pub.events[-1].event_id == progress(ref, _at(state, "0.004", "closed")).event_id


async def test_broken_stream_hands_over_to_rest(setup: Setup) -> None:
    paper, tracker, pub, _, _ = setup
    paper.push([])
    await asyncio.sleep(0.2)
    line = paper._book("BTC/USDT")  # the fill happens while the stream is down
    line.price = Decimal("49000")
    paper._match(line)
    paper.push(TransientError("connection reset"))
    await _until(lambda: any(isinstance(e, OrderFilled) for e in pub.events))
    assert [type(e).__name__ for e in pub.events].count("OrderFilled") == 1
    broke = tracker.metrics.reconciliations.labels("stream_broke")._value.get()
    assert broke == 1
