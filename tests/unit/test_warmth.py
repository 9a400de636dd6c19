"""Shard warmth by marker (worker.orders.warmth): a worker that took a shard over knows
its registry is complete only when its own marker came back round the carousel; under
a command backlog the records come round late, and a cancel copy used to answer "not
found" for an order it had itself canceled before its worker died (chaos, 10 of 447)."""

from __future__ import annotations

import asyncio

import pytest

from schemas import CancelDone
from schemas.tracking import TrackBatch
from tests.conftest import cancel, place
from tests.unit.test_handlers import make
from worker.orders import warmth
from worker.orders.handlers import handle
from worker.orders.tracker import Tracker
from worker.orders.warmth import ShardWarmth
from worker.ports import ACK, DEFER, Delivery, Deps


def test_a_marker_per_takeover_and_only_its_own_counts() -> None:
    w = ShardWarmth(cycle_s=10.0, owner="me")
    assert w.warm(0)  # nothing delivered yet: a handler without a consumer
    chan = object()
    m1 = w.seen(0, chan, now=100.0)
    assert m1 is not None and not w.warm(0)
    assert w.seen(0, chan, now=101.0) is None  # sent already
    assert not w.came_back(0, "other/0/1", now=111.0) and not w.warm(0)
    assert w.came_back(0, m1, now=111.0) and w.warm(0)  # back: warm, and it goes round
    assert not w.came_back(0, m1, now=112.0)  # a spare copy is dropped
    assert w.seen(0, chan, now=113.0) is None and w.warm(0)
    m2 = w.seen(0, object(), now=114.0)  # a new channel: the shard may have moved
    assert m2 not in (None, m1) and not w.warm(0)
    assert not w.came_back(0, m1, now=121.0)  # the earlier epoch's marker: let go
    m3 = w.seen(0, None, now=200.0)  # a gap of more than 1.5 cycles
    assert m3 not in (None, m2) and not w.warm(0)
    assert w.seen(0, None, now=215.0) is None
    assert w.seen(0, None, now=228.0) is None
    assert w.seen(0, None, now=231.0) == m3  # not back after 3 cycles: sent again
    w.send_failed(0, m3)
    assert w.seen(0, None, now=232.0) == m3  # a failed publish: sent with the next one


async def test_a_cancel_copy_waits_for_the_marker_and_finds_the_order_it_canceled() -> None:
    deps_a, pub_a, paper = make()
    deps_b_, pub_b, _ = make()
    tracker_b = Tracker(deps_b_.settings, deps_a.exchanges, pub_b, deps_b_.metrics)
    deps_b = Deps(deps_b_.settings, deps_a.exchanges, pub_b, deps_b_.metrics, tracker_b)
    target = place(type="limit", price="50000", timeout_s=None)
    await handle(target, deps_a, Delivery())
    [record] = [r for r in pub_a.records if r.command_id == target.command_id]
    assert record.exchange_order_id is not None
    # worker A handled the cancel, canceled the order on the exchange and died before
    # its outcome was out; worker B takes the shard over behind a backlog
    await paper.cancel_order("BTC/USDT", record.exchange_order_id)
    marker = tracker_b.warmth.seen(0, object())
    assert marker is not None
    copy = cancel(target.command_id, symbol=None)  # no symbol: only open orders are seen
    # the record is behind a backlog, later than two cycles and a second: the copy goes
    # round the carousel instead of deciding (before: "not found", a second outcome)
    assert await handle(copy, deps_b, Delivery(redelivered=True, attempt=2)) == DEFER
    assert not pub_b.events
    await tracker_b.on_record(record, 0)  # the target's record comes round first
    await tracker_b.on_record(TrackBatch(records=(), marker=marker), 0)
    assert await handle(copy, deps_b, Delivery(deferrals=1)) == ACK
    outcomes = [e for e in pub_b.events if e.command_id == copy.command_id]
    assert [type(e) for e in outcomes] == [CancelDone]
    assert isinstance(outcomes[0], CancelDone) and outcomes[0].order_status == "canceled"


async def test_without_the_marker_a_cancel_is_deferred_then_decides(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Still cold two cycles after it arrived: the cancel goes round the carousel (it comes
    back behind every record on its way now), at most MAX_DEFERRALS times; then it
    decides on what is known."""
    deps, pub, _paper = make(OW_TRACK_CYCLE_S="0.2")
    assert deps.tracker.warmth.seen(0, object()) is not None
    copy = cancel("never-placed", symbol=None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcome = await handle(copy, deps, Delivery(redelivered=True, attempt=2))
    assert outcome == DEFER and 0.8 < loop.time() - start < 5 and not pub.events
    last = await handle(copy, deps, Delivery(deferrals=warmth.MAX_DEFERRALS))
    assert last == ACK
    assert [type(e).__name__ for e in pub.events if e.command_id == copy.command_id] == [
        "CancelRejected"]
    assert deps.metrics.reconciliations.labels("registry_incomplete")._value.get() == 1


async def test_a_deferred_copy_coming_back_in_the_same_epoch_proves_warmth() -> None:
    deps, _pub, _ = make()
    w = deps.tracker.warmth
    marker = w.seen(0, object())
    assert marker is not None and not w.warm(0)
    w.arrived(0, "someone-else/0/1")
    assert not w.warm(0)
    w.arrived(0, marker)
    assert w.warm(0)
