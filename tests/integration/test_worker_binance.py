"""The worker, configured only through settings, trading on the Binance simulator
through the real ccxt client, on the real broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from schemas import OrderRejected, RejectReason, client_order_id
from tests.conftest import cancel, place
from tests.exchange.conftest import KEY, RECV_WINDOW_MS, SECRET, TIMEOUT_MS
from tests.integration.harness import Harness, harness
from worker.exchange.models import OrderRequest
from worker.lab.sim.binance import BinanceSim


@pytest.fixture
async def setup(amqp_url: str, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[tuple[Harness, BinanceSim]]:
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_SECRET", SECRET)
    exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": url},
                             "timeout_ms": TIMEOUT_MS, "options": {"recvWindow": RECV_WINDOW_MS}}}
    async with harness(amqp_url, OW_EXCHANGES=json.dumps(exchanges)) as h:
        await h.start_worker()
        yield h, sim
    await sim.stop()


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


async def test_startup_reconciliation_adopts_orphan_orders(amqp_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_SECRET", SECRET)
    book = sim.books[KEY]
    orphan = await book.create_order(OrderRequest(
        symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.01"),
        price=Decimal("40000"), client_order_id=client_order_id("acct1", "lost-command")))
    foreign = await book.create_order(OrderRequest(  # not ours: left alone
        symbol="BTC/USDT", side="buy", type="limit", amount=Decimal("0.01"),
        price=Decimal("40000"), client_order_id="manual-order-1"))
    exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": url},
                             "timeout_ms": TIMEOUT_MS, "options": {"recvWindow": RECV_WINDOW_MS}}}
    try:
        async with harness(amqp_url, OW_EXCHANGES=json.dumps(exchanges),
                           OW_RECONCILE_TARGETS="acct1:binance", OW_RECONCILE_GRACE_S="0.1",
                           OW_ORPHAN_TIMEOUT_S="1") as h:
            async with h.client() as client:
                await h.start_worker()
                final = await client.wait_terminal(f"orphan:{orphan.client_order_id}", 20)
    finally:
        await sim.stop()
    assert type(final).__name__ == "OrderCanceled"
    assert final.client_order_id == orphan.client_order_id
    assert (await book.get_order("BTC/USDT", foreign.id)).status == "open"
