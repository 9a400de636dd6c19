"""Issue 10, item 2: a zombie delivery cannot create after the new holder trusted
"absent" (worker.orders.place, worker.broker.fence, worker.exchange.signing)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from schemas import client_order_id
from tests.conftest import place
from tests.unit.test_handlers import make
from worker.broker.fence import BrokerFences
from worker.errors import FenceExpired, FenceLost
from worker.exchange.placement import CREATE_WATCH, CreateWatch
from worker.exchange.signing import signing_create, watch_signing
from worker.lab.testing import StaticExchanges
from worker.orders.handlers import handle
from worker.ports import Delivery, Deps


class FakeChannel:
    """An AMQP channel as the fence sees it: basic.qos answers while it is open."""

    def __init__(self) -> None:
        self.is_closed = False
        self.qos_calls = 0

    async def basic_qos(self, **_: Any) -> None:
        self.qos_calls += 1
        if self.is_closed:
            raise ConnectionError("channel closed by the broker")


class FakeMessage:
    def __init__(self, channel: FakeChannel) -> None:
        self._channel = channel

    @property
    def channel(self) -> FakeChannel:
        return self._channel


class Stalled:
    """Worker A's view of the exchange: its lookup and then its create are slow (GC
    pause, partitioned network, rate-limit throttle)."""

    def __init__(self, inner: Any, lookup_s: float, create_s: float) -> None:
        self.inner, self.lookup_s, self.create_s = inner, lookup_s, create_s

    async def find_order(self, *a: Any) -> Any:
        await asyncio.sleep(self.lookup_s)
        return await self.inner.find_order(*a)

    async def execute_trade(self, *a: Any, **kw: Any) -> Any:
        await asyncio.sleep(self.create_s)
        return await self.inner.execute_trade(*a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_zombie_holder_cannot_create_after_the_redelivery_trusted_absent() -> None:
    """A looks up (absent) at 0.5 s, stalls, and would create at 0.8 s. The broker closed
    A's channel at 0.05 s and gave the command to B, which trusted "absent" after
    settle + fence (0.55 s) and created. Before the fence, A created a second order."""
    deps_b, pub_b, paper = make(OW_FENCE_S="0.3")
    paper.settle_s = 0.2  # type: ignore[misc]
    s = deps_b.settings
    exchanges_a = StaticExchanges({"paper": Stalled(paper, 0.5, 0.3)})  # type: ignore[dict-item]
    pub_a = type(pub_b)()
    deps_a = Deps(s, exchanges_a, pub_a, deps_b.metrics, deps_b.tracker)
    fences = BrokerFences(prefetch=32, timeout_s=1.0)
    chan_a, chan_b = FakeChannel(), FakeChannel()
    cmd = place()
    cid = client_order_id(cmd.account, cmd.command_id)

    a = asyncio.create_task(handle(cmd, deps_a, Delivery(
        fence=fences.for_message(FakeMessage(chan_a)))))
    await asyncio.sleep(0.05)
    chan_a.is_closed = True  # the broker lost A (A has not noticed) and redelivers to B
    out_b = await handle(cmd, deps_b, Delivery(attempt=2, redelivered=True,
                                               fence=fences.for_message(FakeMessage(chan_b))))
    out_a = await a
    await asyncio.sleep(0.1)
    assert paper.orders_for(cid) == 1
    assert out_b.action == "ack" and pub_b.kinds()[:1] == ["OrderAccepted"]
    assert out_a.action == "retry" and pub_a.events == []  # A decided nothing
    await deps_b.tracker.close()


async def test_channel_fence_shares_round_trips_and_fails_once_closed() -> None:
    fences = BrokerFences(prefetch=32, timeout_s=1.0)
    chan = FakeChannel()
    fence = fences.for_message(FakeMessage(chan))
    first = await fence.proven_at(1.0)
    other = fences.for_message(FakeMessage(chan))
    assert await other.proven_at(1.0) == first and chan.qos_calls == 1  # shared, fresh
    assert await fence.proven_at(0.0) > first and chan.qos_calls == 2   # too old: redone
    chan.is_closed = True
    with pytest.raises(FenceLost):
        await fence.proven_at(0.0)


class FakeClient:
    def __init__(self) -> None:
        self.signed = 0

    def sign(self, *_: Any) -> dict[str, str]:
        self.signed += 1
        return {"url": "x"}


def test_a_create_held_past_its_fence_deadline_is_never_signed() -> None:
    """ccxt's throttle may hold a create after the fence check: the signer checks again."""
    client = FakeClient()
    watch_signing(client)
    late = CreateWatch(send_by=time.monotonic() - 0.01)
    token = CREATE_WATCH.set(late)
    try:
        with signing_create(), pytest.raises(FenceExpired):
            client.sign("order", "private", "POST", {})
        assert client.signed == 0 and late.signed_at is None
        client.sign("order", "private", "GET", {})  # reads outside a create are not fenced
        assert client.signed == 1
    finally:
        CREATE_WATCH.reset(token)
    ok = CreateWatch(send_by=time.monotonic() + 5)
    token = CREATE_WATCH.set(ok)
    try:
        with signing_create():
            client.sign("order", "private", "POST", {})
        assert ok.signed_at is not None and ok.signed_at <= time.monotonic()
    finally:
        CREATE_WATCH.reset(token)


async def test_a_redelivery_never_waits_beyond_the_intake_budget() -> None:
    """settle + fence longer than the intake budget (e.g. recvWindow 60 s): the command
    goes to the tracker as pending at once instead of staying unacked that long."""
    deps, pub, paper = make(OW_INTAKE_BUDGET_S="0.5")
    paper.settle_s = 60.0  # type: ignore[misc]
    outcome = await handle(place(), deps, Delivery(attempt=2, redelivered=True))
    assert outcome.action == "ack" and paper.created == 0 and pub.events == []
    assert deps.tracker.entries and next(iter(deps.tracker.entries.values())).phase == "pending"
    await deps.tracker.close()


class Counting(Stalled):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner, 0.0, 0.0)
        self.lookups = 0

    async def find_order(self, *a: Any) -> Any:
        self.lookups += 1
        return await self.inner.find_order(*a)


@pytest.mark.parametrize(("arrived_s_ago", "lookups"), [(0.0, 2), (1.0, 1)])
async def test_a_redelivered_copy_waits_from_its_arrival_not_from_its_turn(
        arrived_s_ago: float, lookups: int) -> None:
    """Redelivered copies queued in one account's turn wait together: a copy whose
    lookup begins after its arrival + fence + settle trusts that lookup; a fresh one
    waits and looks again."""
    deps, pub, paper = make(OW_FENCE_S="0.3")
    paper.settle_s = 0.2  # type: ignore[misc]
    counting = Counting(paper)
    deps = Deps(deps.settings, StaticExchanges({"paper": counting}),  # type: ignore[dict-item]
                pub, deps.metrics, deps.tracker)
    cmd = place()
    started = time.monotonic()
    out = await handle(cmd, deps, Delivery(
        attempt=2, redelivered=True, received_at=time.monotonic() - arrived_s_ago,
        fence=BrokerFences(prefetch=32, timeout_s=1.0).for_message(FakeMessage(FakeChannel()))))
    assert out.action == "ack" and pub.kinds()[:1] == ["OrderAccepted"]
    assert paper.orders_for(client_order_id(cmd.account, cmd.command_id)) == 1
    assert counting.lookups == lookups
    assert (time.monotonic() - started >= 0.45) == (lookups == 2)
    await deps.tracker.close()
