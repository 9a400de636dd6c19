"""Hostile and malformed command payloads never crash the worker: each ends as a
Malformed verdict (rejected + dead-lettered by the consumer) or a handled command."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import OrderRejected
from tests.unit.test_handlers import make
from worker.orders.handlers import handle
from worker.orders.intake import Malformed, parse
from worker.ports import Delivery

VALID = {"kind": "place_order", "command_id": "fz-1", "account": "acct1", "exchange": "paper",
         "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01",
         "created_at": "2026-01-01T00:00:00Z"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

hostile_strings = st.sampled_from([
    "-1", "0", "0.0", "1e400", "NaN", "Infinity", "9" * 40, "0." + "0" * 30 + "1",
    "999999999999999999.999999999999999999", " 1", "1,5", "\u202e1", "BTC/USDT\x00",
    "x" * 100_000, "💥", "", "null"])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    payload = dict(VALID, command_id=f"fz-{draw(st.integers(0, 10**9))}",
                   created_at=datetime.now(UTC).isoformat())
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*VALID, "price", "timeout_s", "max_slippage_bps",
                                    "time_in_force", "unknown_field", "schema_version"]))
        action = draw(st.sampled_from(["replace", "hostile", "delete"]))
        if action == "delete":
            payload.pop(key, None)
        else:
            payload[key] = draw(json_values if action == "replace" else hostile_strings)
    raw = json.dumps(payload).encode()
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8)) + raw[cut:]  # non-UTF-8 / broken JSON
    return raw


async def _run(body: bytes) -> None:
    verdict = parse(body)
    if isinstance(verdict, Malformed):
        assert verdict.error
        return
    deps, pub, _ = make()
    outcome = await handle(verdict, deps, Delivery())
    assert outcome.action in ("ack", "dead_letter")
    if outcome.action == "dead_letter":
        assert isinstance(pub.events[-1], OrderRejected)
    assert pub.events, "every handled command publishes at least one event"


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(mutated())
def test_mutated_commands_never_crash(body: bytes) -> None:
    asyncio.run(_run(body))


@SETTINGS
@given(st.binary(max_size=2048) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_and_json_never_crash(body: bytes) -> None:
    asyncio.run(_run(body))


def test_oversize_and_deeply_nested() -> None:
    assert isinstance(parse(b"[" * 100_000 + b"]" * 100_000), Malformed)
    big = msgspec.json.encode(dict(VALID, padding="x" * 1_000_000))
    assert "larger than" in parse(big).error  # type: ignore[union-attr]
