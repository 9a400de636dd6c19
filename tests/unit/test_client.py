"""The client without a broker: bounded memory, waiters cleaned up, validation, errors."""

from __future__ import annotations

import asyncio

import pytest

from tests.audit_events import order_events, rejected
from tests.conftest import place
from worker.client import InvalidCommandError, OutcomeTimeoutError, validate_command
from worker.client_log import OrderLog


def test_an_orders_state_is_dropped_after_its_outcome_beyond_the_finished_cache() -> None:
    log = OrderLog(keep_finished=3, max_open=5)
    for n in range(100):
        for event in order_events(f"o{n}"):
            assert log.add(event)
    assert len(log) == 3  # only the 3 most recently finished orders are remembered
    assert [type(e).__name__ for e in log.history("cmd-o99")] == ["OrderAccepted",
                                                                   "OrderFilled"]
    assert log.history("cmd-o0") == []
    for n in range(10):  # orders whose outcome never comes: capped too
        log.add(order_events(f"open{n}")[0])
    assert len(log) <= 3 + 5 and log.evicted_open == 5


def test_duplicates_are_dropped_while_the_order_is_remembered() -> None:
    log = OrderLog()
    events = order_events("d1")
    assert [log.add(e) for e in [*events, *events]] == [True, True, False, False]
    assert log.duplicates == 2 and len(log.history("cmd-d1")) == 2


async def test_waiters_and_streams_leave_nothing_behind() -> None:
    log = OrderLog()
    with pytest.raises(TimeoutError):
        await log.wait("cmd-w1", lambda e: True, 0.01)
    waiting = asyncio.create_task(log.wait("cmd-w2", lambda e: True, 5))
    await asyncio.sleep(0)
    log.add(rejected("w2"))
    assert (await waiting).command_id == "cmd-w2"
    stream = log.open_stream("cmd-w3")
    log.close_stream("cmd-w3", stream)
    assert log.pending() == 0


def test_commands_are_validated_in_plain_language_before_publishing() -> None:
    with pytest.raises(InvalidCommandError, match=r"amount must be a decimal string like "
                                                  r"'0.01' .*got '-1'$"):
        validate_command(place(amount="-1"))
    with pytest.raises(InvalidCommandError, match="limit order requires price"):
        validate_command(place(type="limit"))
    with pytest.raises(InvalidCommandError, match="symbol must be a unified symbol like"):
        validate_command(place(symbol="btcusdt"))
    assert validate_command(place()).startswith(b'{"kind":"place_order"')


def test_timeouts_are_typed_and_still_timeout_errors() -> None:
    assert issubclass(OutcomeTimeoutError, TimeoutError)


def test_a_watch_naming_an_account_matches_its_canonical_events() -> None:
    from worker.client import _canonical_watch

    assert _canonical_watch("order.Desk-1.#") == "order.desk_1.#"
    assert _canonical_watch("order.#") == "order.#"
    assert _canonical_watch("order.*.BTC_USDT.#") == "order.*.BTC_USDT.#"
