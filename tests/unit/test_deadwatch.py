"""The dead-letter watcher reads a dead letter's *latest* death from its headers."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.tracking import TrackOrder
from tests.unit.test_handlers import make
from worker.broker.publisher import record_message
from worker.broker.topology import Names
from worker.orders.deadwatch import dead_letter_of, on_dead_letter

NAMES = Names("p", 2)
AT = datetime(2026, 11, 26, 1, 16, 5, tzinfo=UTC)
RECORD = TrackOrder(command_id="c1", account="a", exchange="paper", symbol="BTC/USDT",
                    client_order_id="ow-x", phase="open", side="buy", type="limit",
                    amount="1", price="1", time_in_force="GTC", exchange_order_id="1")


def _record_at_delivery_limit() -> dict[str, object]:
    """Headers RabbitMQ 3.10 gave a record that expired from its wait queue into a shard
    queue and then reached that queue's delivery limit (captured on a local node)."""
    return {
        "x-death": [
            {"count": 1, "exchange": "p.tracking", "queue": "p.commands.0",
             "reason": "delivery_limit", "routing-keys": ["0"], "time": AT},
            {"count": 1, "exchange": "", "queue": "p.track.0", "reason": "expired",
             "routing-keys": ["p.track.0"], "time": AT}],
        "x-first-death-exchange": "", "x-first-death-queue": "p.track.0",
        "x-first-death-reason": "expired"}


def test_a_record_at_the_delivery_limit_counts_as_from_a_shard_queue() -> None:
    dead = dead_letter_of(b"{}", _record_at_delivery_limit(), NAMES)
    assert dead.from_shard_queue and dead.via_tracking
    assert dead.broker_reason == "delivery_limit" and dead.worker_reason is None


async def test_a_record_at_the_delivery_limit_goes_back_into_the_carousel() -> None:
    """Read by its first death (the wait queue, ``expired``) the watcher dropped the
    record: the order's only record was gone and nobody followed the order again."""
    deps, pub, _ = make()
    body = record_message(RECORD).body
    await on_dead_letter(dead_letter_of(body, _record_at_delivery_limit(), NAMES), deps)
    assert [r.client_order_id for r in pub.records] == ["ow-x"]


def test_a_command_at_the_delivery_limit_and_the_workers_own_dead_letters() -> None:
    command = {"x-death": [{"count": 1, "exchange": "p.commands", "queue": "p.commands.1",
                            "reason": "delivery_limit", "routing-keys": ["1/2"]}],
               "x-first-death-queue": "p.commands.1",
               "x-first-death-reason": "delivery_limit"}
    dead = dead_letter_of(b"{}", command, NAMES)
    assert dead.from_shard_queue and not dead.via_tracking
    assert dead.broker_reason == "delivery_limit"
    own = dead_letter_of(b"{}", {"x-orderworker-reason": b"malformed: x"}, NAMES)
    assert own.worker_reason == "malformed: x" and not own.from_shard_queue
