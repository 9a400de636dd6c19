"""The pre-create lookup runs only when an earlier attempt of the command is possible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import place
from tests.unit.test_handlers import make
from worker.exchange.models import OrderState
from worker.orders.handlers import handle
from worker.orders.lookup import SeenCommands, needs_lookup
from worker.ports import Delivery

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def why(delivery: Delivery, *, created: datetime = NOW, seen: SeenCommands | None = None,
        known: bool = False) -> str | None:
    seen = seen or SeenCommands(started_at=NOW - timedelta(minutes=1))
    return needs_lookup("cid", created, delivery, seen, known=known, now=NOW + timedelta(
        seconds=1), max_age_s=300, max_skew_s=5)


def test_first_attempt_needs_no_lookup() -> None:
    assert why(Delivery()) is None


@pytest.mark.parametrize(("delivery", "reason"), [
    (Delivery(redelivered=True), "redelivered"),
    (Delivery(attempt=2), "redelivered"),
    (Delivery(published_attempt=2), "republished"),
])
def test_broker_and_client_mark_earlier_attempts(delivery: Delivery, reason: str) -> None:
    assert why(delivery) == reason


def test_memory_and_time_mark_earlier_attempts() -> None:
    seen = SeenCommands(capacity=2, started_at=NOW - timedelta(minutes=1))
    seen.add("cid")
    assert why(Delivery(), seen=seen) == "seen"
    seen.add("a")
    seen.add("b")  # bounded: the oldest is forgotten
    assert "cid" not in seen
    assert why(Delivery(), known=True) == "seen"
    assert why(Delivery(), created=NOW - timedelta(minutes=2)) == "older_than_worker"
    assert why(Delivery(), seen=SeenCommands(started_at=NOW - timedelta(hours=1)),
               created=NOW - timedelta(minutes=10)) == "stale"
    assert why(Delivery(), seen=SeenCommands()) == "older_than_worker"  # start unknown


async def test_steady_state_is_one_create_and_no_lookup() -> None:
    deps, pub, paper = make(OW_LOOKUP_BEFORE_CREATE="when_needed")
    finds = 0
    real_find = paper.find_order

    async def counting_find(symbol: str, cid: str) -> OrderState | None:
        nonlocal finds
        finds += 1
        return await real_find(symbol, cid)

    paper.find_order = counting_find  # type: ignore[method-assign]
    deps.seen.started_at = datetime.now(UTC) - timedelta(minutes=1)  # up for a while
    later = datetime.now(UTC)
    cmd = place(created_at=later)
    assert (await handle(cmd, deps, Delivery())).action == "ack"
    assert (finds, paper.created) == (0, 1)
    # the same command again (a copy): looked up, adopted, never created twice
    assert (await handle(cmd, deps, Delivery(published_attempt=2))).action == "ack"
    fresh = type(deps)(deps.settings, deps.exchanges, deps.publisher, deps.metrics,
                       deps.tracker)  # another process: only the client's mark tells it
    fresh.seen.started_at = deps.seen.started_at
    assert (await handle(place(command_id=cmd.command_id, created_at=later), fresh,
                         Delivery(published_attempt=2))).action == "ack"
    assert paper.created == 1  # the copies were adopted or acked, never created again
    assert [type(e).__name__ for e in pub.events].count("OrderAccepted") >= 1


def test_operator_can_always_look_up() -> None:
    seen = SeenCommands(started_at=NOW - timedelta(minutes=1))
    assert needs_lookup("cid", NOW, Delivery(), seen, known=False, now=NOW, max_age_s=300,
                        max_skew_s=5, always=True) == "always"
