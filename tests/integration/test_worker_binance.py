"""The worker, configured only through settings, trading on the Binance simulator
through the real ccxt client, on the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from schemas import OrderRejected, RejectReason, client_order_id
from tests.conftest import cancel, place
from tests.exchange.conftest import RECV_WINDOW_MS, TIMEOUT_MS
from tests.integration.conftest import worker_on_binance_sim
from tests.integration.harness import Harness
from worker.lab.sim.binance import BinanceSim


@pytest.fixture
async def setup(amqp_url: str, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[tuple[Harness, BinanceSim]]:
    venue = {"timeout_ms": TIMEOUT_MS, "options": {"recvWindow": RECV_WINDOW_MS}}
    async with worker_on_binance_sim(amqp_url, monkeypatch, venue) as running:
        yield running


async def test_same_flows_as_paper(setup: tuple[Harness, BinanceSim]) -> None:
    h, sim = setup
    async with h.client() as client:
        filled = await client.submit(place(exchange="binance"), timeout_s=30)
        timed_out = await client.submit(place(exchange="binance", type="limit", price="40000",
                                              timeout_s=0.5), timeout_s=30)
        resting = place(exchange="binance", type="limit", price="40000", timeout_s=60)
        await client.send(resting)
        await client.wait_first(resting.command_id, 30)
        await client.send(cancel(resting.command_id, exchange="binance"))
        canceled = await client.wait_terminal(resting.command_id, 30)
        too_big = await client.submit(place(exchange="binance", amount="50"), timeout_s=30)
    assert [type(e).__name__ for e in filled] == ["OrderAccepted", "OrderFilled"]
    assert filled[-1].fee > 0 and filled[-1].exchange_order_id
    assert [type(e).__name__ for e in timed_out] == ["OrderAccepted", "OrderCanceled"]
    assert type(canceled).__name__ == "OrderCanceled"
    assert isinstance(too_big[-1], OrderRejected)
    assert too_big[-1].reason == RejectReason.RISK_MAX_NOTIONAL
    assert max(sim.orders_per_client_id().values()) == 1


@pytest.mark.parametrize("kind", ["accept_drop", "500_after", "reset"])
async def test_faulted_create_still_yields_one_order(setup: tuple[Harness, BinanceSim],
                                                     kind: str) -> None:
    h, sim = setup
    sim.faults.set([{"kind": kind, "group": "create", "count": 1}])
    cmd = place(exchange="binance")
    async with h.client() as client:
        events = await client.submit(cmd, timeout_s=30)
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert sim.orders_per_client_id()[client_order_id(cmd.account, cmd.command_id)] == 1


async def test_a_new_worker_takes_over_resting_orders_from_the_records(
        setup: tuple[Harness, BinanceSim]) -> None:
    """No reconcile targets: the tracking records tell the next owner what to follow."""
    h, sim = setup
    async with h.client() as client:
        resting = place(exchange="binance", type="limit", price="40000", timeout_s=4)
        await client.send(resting)
        await client.wait_first(resting.command_id, 30)
        await h.workers[0].stop()  # its followers stop; the record keeps circulating
        await h.start_worker()
        final = await client.wait_terminal(resting.command_id, 30)
    assert type(final).__name__ == "OrderCanceled"
    assert max(sim.orders_per_client_id().values()) == 1
