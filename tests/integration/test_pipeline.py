"""End-to-end on the real RabbitMQ with the paper exchange."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest

from schemas import OrderRejected, RejectReason
from schemas.commands import encode_command
from tests.conftest import cancel, place
from tests.integration.harness import harness
from worker.broker.topology import shard_for
from worker.client import InvalidCommandError
from worker.exchange.ports import Exchange
from worker.lab.testing import StaticExchanges


async def test_market_order_round_trip(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        async with h.client() as client:
            events = await client.submit(place(amount="0.02"), timeout_s=20)
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderFilled"]
    assert events[-1].filled == events[-1].amount


async def test_limit_order_times_out_and_is_canceled(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        async with h.client() as client:
            cmd = place(type="limit", price="40000", timeout_s=0.5)
            events = await client.submit(cmd, timeout_s=20)
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "OrderCanceled"]


async def test_cancel_command(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        async with h.client() as client:
            cmd = place(type="limit", price="40000")
            await client.send(cmd)
            await client.wait_first(cmd.command_id, 20)
            outcome = await client.submit(cancel(cmd.command_id, symbol=None), timeout_s=20)
            final = await client.wait_terminal(cmd.command_id, 20)
    assert type(final).__name__ == "OrderCanceled"
    assert [type(e).__name__ for e in outcome] == ["CancelDone"]
    assert outcome[0].order_status == "canceled"  # type: ignore[union-attr]


async def test_each_order_logs_one_info_line_per_milestone_and_is_counted(
        amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    async with harness(amqp_url) as h:
        worker = await h.start_worker()
        async with h.client() as client:
            market = place()
            await client.submit(market, timeout_s=20)
            limit = place(type="limit", price="57500")
            await client.send(limit)
            await client.wait_first(limit.command_id, 20)
            await client.cancel(limit, timeout_s=20)  # canceled by a CancelOrder
            await client.submit(place(exchange="nowhere"), timeout_s=20)  # rejected
    lines = [(r.getMessage(), getattr(r, "command_id", None) or getattr(r, "client_order_id",
                                                                          None))
             for r in caplog.records if r.levelno == logging.INFO
             and r.getMessage().startswith("order ")]
    messages = [m for m, _ in lines]
    assert messages.count("order accepted") == 2, lines
    assert messages.count("order filled") == 1 and messages.count("order canceled") == 1, lines
    counted = {s.labels["outcome"]: s.value for m in worker.metrics.outcomes.collect()
               for s in m.samples if s.name == "ow_orders_total"}
    assert counted == {"filled": 1, "canceled": 1, "rejected": 1}, counted


async def test_invalid_and_garbage_are_rejected_and_dead_lettered(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        async with h.client() as client:
            bad = {"kind": "place_order", "command_id": "bad-1", "account": "acct1",
                   "exchange": "paper", "symbol": "BTC/USDT", "side": "buy",
                   "type": "market", "amount": "-5", "created_at": datetime.now(UTC).isoformat()}
            await client.publish_raw(json.dumps(bad).encode(), "acct1")
            await client.publish_raw(b"\x00\x01 not json", "acct1")
            no_price = place(command_id="bad-2", type="limit")
            with pytest.raises(InvalidCommandError, match="limit order requires price"):
                await client.send(no_price)  # the client refuses before publishing
            await client.publish_raw(encode_command(no_price), "acct1")  # the worker too
            rejected = await client.wait_terminal("bad-1", 20)
            rejected2 = await client.wait_terminal("bad-2", 20)
        dead = await h.dead_letters(expect=3)
    assert isinstance(rejected, OrderRejected) and rejected.reason == RejectReason.MALFORMED
    assert rejected.message.startswith("amount must be a decimal string")
    assert isinstance(rejected2, OrderRejected) and rejected2.reason == RejectReason.INVALID
    reasons = sorted(str(m.headers["x-orderworker-reason"]) for m in dead)
    assert len(reasons) == 3
    assert any(r.startswith("invalid: limit order requires price") for r in reasons)
    assert sum(r.startswith("malformed") for r in reasons) == 2


async def test_shutdown_hands_resting_orders_to_the_next_worker(amqp_url: str) -> None:
    shared = StaticExchanges()  # one paper exchange for both workers, like a real one
    async with harness(amqp_url) as h:
        worker = await h.start_worker(exchanges=shared)
        async with h.client() as client:
            cmds = [place(type="limit", price="40000", timeout_s=3, account=f"a{i}")
                    for i in range(3)]
            for cmd in cmds:
                await client.send(cmd)
            for c in cmds:
                await client.wait_first(c.command_id, 20)
            await worker.stop()  # acked at acceptance: nothing in flight to wait for
            await h.start_worker(exchanges=shared)
            finals = [await client.wait_terminal(c.command_id, 20) for c in cmds]
    assert [type(f).__name__ for f in finals] == ["OrderCanceled"] * 3


class _Exploding(StaticExchanges):
    """A wiring bug for the first few calls (the command crashes its handler)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def get(self, account: str, exchange: str) -> Exchange:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("bug in the exchange wiring")
        return await super().get(account, exchange)


async def test_crashing_command_is_dead_lettered_and_still_gets_an_outcome(
        amqp_url: str) -> None:
    async with harness(amqp_url, OW_DELIVERY_LIMIT="2", OW_FENCE_S="0.2") as h:
        await h.start_worker(exchanges=_Exploding(failures=3))
        async with h.client() as client:
            cmd = place()
            await client.send(cmd)
            final = await client.wait_terminal(cmd.command_id, 30)
        dead = await h.dead_letters(expect=1)
    # the broker dead-lettered it (delivery limit); the watcher resolved it by lookup
    assert type(final).__name__ == "OrderFailed"
    assert final.reason == RejectReason.NOT_PLACED  # type: ignore[union-attr]
    assert dead[0].headers["x-first-death-reason"] in ("delivery_limit", b"delivery_limit")


async def test_sigterm_on_a_worker_process_finishes_in_flight_orders(amqp_url: str) -> None:
    import os
    import signal
    import sys

    async with harness(amqp_url) as h:
        env = {**os.environ, **h.env}
        async with h.client() as client:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", "run",
                                                        env=env)
            await client.wait_for_workers()
            cmd = place(type="limit", price="40000")
            await client.send(cmd)
            await client.wait_first(cmd.command_id, 30)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0  # promptly: a resting order does not hold the worker


async def test_a_deferred_command_comes_back_round_the_carousel(amqp_url: str) -> None:
    """The real broker path of a deferral (worker.orders.cancel): a command sent into its
    shard's wait queue expires into the shard queue through the tracking exchange and is
    handled, as a redelivery."""
    async with harness(amqp_url) as h:
        worker = await h.start_worker()
        assert worker.consumer is not None
        async with h.client() as client:
            cmd = place()
            shard = shard_for(cmd.account, h.names.shards)
            await worker.consumer.publisher.defer(encode_command(cmd), shard,
                                                  {"x-ow-deferred": 1})
            final = await client.wait_terminal(cmd.command_id, 30)
    assert type(final).__name__ == "OrderFilled"
