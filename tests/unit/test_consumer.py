"""The consumer's ack decisions, with fake messages (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from schemas.commands import encode_command
from schemas.tracking import MAX_BATCH, TrackBatch, TrackOrder, batches, encode_record
from tests.conftest import place
from tests.unit.fakes import ScriptedPaper
from tests.unit.test_handlers import make
from worker.broker.consumer import CommandConsumer
from worker.broker.topology import Names
from worker.exchange.models import OrderRequest, OrderState

NAMES = Names("ow", 4)


class FakeChannel:
    is_closed = False

    async def basic_qos(self, **_: Any) -> None:
        return None


class FakeMessage:
    def __init__(self, body: bytes, log: list[str], name: str, exchange: str = "ow.commands",
                 routing_key: str = "") -> None:
        self.body, self.headers, self.redelivered = body, {}, False
        self.message_id, self.log, self.name = name, log, name
        self.exchange, self.routing_key = exchange, routing_key
        self.channel = FakeChannel()

    async def ack(self) -> None:
        self.log.append(f"ack {self.name}")

    async def nack(self, requeue: bool = True) -> None:
        self.log.append(f"nack {self.name}")


class DeadLetters:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, str]] = []

    async def dead_letter(self, body: bytes, reason: str, headers: dict[str, str]) -> None:
        self.items.append((body, reason))


class SlowPaper(ScriptedPaper):
    def __init__(self, log: list[str], *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.log = log

    async def create_order(self, req: OrderRequest) -> OrderState:
        await asyncio.sleep(0.3)
        self.log.append("created")
        return await super().create_order(req)


async def test_draining_returns_a_command_only_after_its_account_predecessor_submitted() -> None:
    log: list[str] = []
    deps, _, _ = make()
    deps.exchanges.exchanges["paper"] = SlowPaper(log)  # type: ignore[attr-defined]
    consumer = CommandConsumer(deps, DeadLetters(), NAMES)  # type: ignore[arg-type]
    first = asyncio.create_task(consumer.on_message(  # type: ignore[arg-type]
        FakeMessage(encode_command(place(account="acct1")), log, "c1")))
    await asyncio.sleep(0.05)  # c1 is inside its create
    consumer.stopping = True   # SIGTERM: consumers cancelled, c2 was already on the wire
    second = asyncio.create_task(consumer.on_message(  # type: ignore[arg-type]
        FakeMessage(encode_command(place(account="acct1")), log, "c2")))
    other = asyncio.create_task(consumer.on_message(  # type: ignore[arg-type]
        FakeMessage(encode_command(place(account="acct2")), log, "c3")))
    await asyncio.gather(first, second, other)
    assert log.index("nack c3") < log.index("created")  # other accounts: returned at once
    assert log.index("created") < log.index("nack c2")  # same account: after c1's create
    assert "ack c1" in log


async def test_malformed_body_is_dead_lettered_and_acked() -> None:
    log: list[str] = []
    deps, pub, _ = make()
    dead = DeadLetters()
    consumer = CommandConsumer(deps, dead, NAMES)  # type: ignore[arg-type]
    await consumer.on_message(FakeMessage(  # type: ignore[arg-type]
        b'{"kind":"place_order","command_id":"m-1","amount":"x"}', log, "m1"))
    assert log == ["ack m1"]
    assert dead.items and dead.items[0][1].startswith("malformed")
    assert pub.kinds() == ["OrderRejected"]


def _record(**kw: Any) -> TrackOrder:
    base: dict[str, Any] = {"command_id": "c-1", "account": "acct1", "exchange": "paper",
                            "symbol": "BTC/USDT", "client_order_id": "ow-x", "phase": "open",
                            "exchange_order_id": "P999", "side": "buy", "type": "limit",
                            "amount": "0.01", "price": "50000"}
    return TrackOrder(**{**base, **kw})


async def test_tracking_record_published_by_a_strategy_is_refused() -> None:
    log: list[str] = []
    deps, _pub, _ = make()
    dead = DeadLetters()
    consumer = CommandConsumer(deps, dead, NAMES)
    await consumer.on_message(FakeMessage(  # type: ignore[arg-type]
        encode_record(_record()), log, "r1", exchange="ow.commands"))
    assert log == ["ack r1"] and dead.items and "tracking record" in dead.items[0][1]
    assert deps.tracker.get("ow-x") is None


async def test_tracking_record_comes_round_registers_and_is_republished_once() -> None:
    log: list[str] = []
    deps, pub, _ = make()
    consumer = CommandConsumer(deps, DeadLetters(), NAMES)
    body = encode_record(_record())
    await consumer.on_message(FakeMessage(body, log, "r1", exchange="ow.tracking"))  # type: ignore[arg-type]
    await consumer.on_message(FakeMessage(body, log, "r2", exchange="ow.tracking"))  # type: ignore[arg-type]
    assert log == ["ack r1", "ack r2"]
    assert len(pub.records) == 1  # the second copy of this cycle is spare: dropped
    assert deps.tracker.get("ow-x") is not None
    # a copy with news (a cancel waiting) is folded in and written back
    news = encode_record(_record(cancel_commands=("x-1",)))
    await consumer.on_message(FakeMessage(news, log, "r3", exchange="ow.tracking"))  # type: ignore[arg-type]
    assert len(pub.records) == 2 and pub.records[-1].cancel_commands == ("x-1",)
    await deps.tracker.close()


async def test_records_in_a_batch_and_concurrent_arrivals_are_renewed_together() -> None:
    """1,000 resting orders must cost a handful of messages per cycle: a batch is folded in
    whole, and records arriving while a renewal is in flight share the next publish."""
    log: list[str] = []
    deps, pub, _ = make()
    consumer = CommandConsumer(deps, DeadLetters(), NAMES)  # type: ignore[arg-type]
    recs = [_record(client_order_id=f"ow-{i}", exchange_order_id=f"P{i}") for i in range(40)]
    batch = encode_record(TrackBatch(records=tuple(recs[:30])))
    singles = [encode_record(r) for r in recs[30:]]
    await asyncio.gather(*(consumer.on_message(FakeMessage(  # type: ignore[arg-type]
        body, log, f"m{i}", exchange="ow.tracking")) for i, body in enumerate([batch, *singles])))
    assert sorted(log) == sorted(f"ack m{i}" for i in range(11))
    assert all(deps.tracker.get(f"ow-{i}") is not None for i in range(40))
    assert len(pub.records) == 40 and pub.calls <= 2, pub.calls
    await deps.tracker.close()


def test_batches_hold_at_most_max_batch_records() -> None:
    recs = [_record(client_order_id=f"ow-{i}") for i in range(2 * MAX_BATCH + 1)]
    assert [len(b.records) for b in batches(recs)] == [MAX_BATCH, MAX_BATCH, 1]


async def test_the_longest_unacked_time_is_measured_per_message() -> None:
    log: list[str] = []
    deps, _, _ = make()
    deps.exchanges.exchanges["paper"] = SlowPaper(log)  # type: ignore[attr-defined]
    consumer = CommandConsumer(deps, DeadLetters(), NAMES)  # type: ignore[arg-type]
    await consumer.on_message(FakeMessage(  # type: ignore[arg-type]
        encode_command(place(account="acct1")), log, "c1"))
    assert "ack c1" in log
    assert 0.3 <= deps.metrics.unacked_max_s < 5  # the 0.3 s create, delivery -> ack
    assert deps.metrics.registry.get_sample_value(
        "ow_message_unacked_seconds_max") == deps.metrics.unacked_max_s
