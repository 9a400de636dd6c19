"""Hypothesis-generated hostile payloads through the real broker and a real worker:
each is rejected with a reason or handled, none crashes the worker or loops."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import PlaceOrder
from tests.conftest import place
from tests.integration.harness import harness
from tests.unit.test_fuzz_intake import mutated
from worker.errors import CommandError
from worker.orders.intake import Malformed, parse
from worker.orders.validation import validate_place

_ids = itertools.count()


@st.composite
def plausible(draw: st.DrawFn) -> bytes:
    """Schema-valid commands with extreme values: handled, risk-rejected, or invalid."""
    order_type = draw(st.sampled_from(["market", "limit"]))
    payload = {"kind": "place_order", "command_id": f"pl-{next(_ids)}", "account": "acct1",
               "exchange": draw(st.sampled_from(["paper", "paper", "nowhere"])),
               "symbol": draw(st.sampled_from(["BTC/USDT", "ETH/USDT", "DOGE/USDT"])),
               "side": draw(st.sampled_from(["buy", "sell"])), "type": order_type,
               "amount": draw(st.sampled_from(["0.001", "0.5", "999999999999999999.9",
                                               "0.000000000000000001"])),
               "time_in_force": draw(st.sampled_from(["GTC", "IOC", "FOK"])),
               "timeout_s": 0.3, "created_at": datetime.now(UTC).isoformat()}
    price = draw(st.sampled_from([None, "1", "60000", "3000", "99999999"]))
    if price is not None:
        payload["price"] = price
    return json.dumps(payload).encode()


def expected_dead(body: bytes) -> bool:
    verdict = parse(body)
    if isinstance(verdict, Malformed):
        return True
    if isinstance(verdict, PlaceOrder):
        try:
            validate_place(verdict)
        except CommandError:
            return True
    return False


async def scenario(amqp_url: str, bodies: list[bytes]) -> None:
    dead_expected = sum(map(expected_dead, bodies))
    valid_ids = {v.command_id for b in bodies if not expected_dead(b)
                 for v in [parse(b)] if not isinstance(v, Malformed)}
    async with harness(amqp_url) as h:
        await h.start_worker()
        async with h.client() as client:
            for body in bodies:
                await client.publish_raw(body, "acct1")
            for command_id in valid_ids:
                await client.wait_terminal(command_id, 30)
            dead = await h.dead_letters(expect=dead_expected, timeout_s=30)
            sentinel = await client.submit(place(), timeout_s=30)  # still alive and working
        left = sum([await h.ready_count(h.names.shard_queue(k)) for k in range(4)])
    print(f"payloads={len(bodies)} dead={len(dead)} valid={len(valid_ids)}")
    assert len(dead) == dead_expected
    assert all(m.headers.get("x-orderworker-reason") for m in dead)  # never a crash loop
    assert type(sentinel[-1]).__name__ == "OrderFilled"
    assert left == 0


@settings(max_examples=3, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(st.lists(plausible() | mutated() | st.binary(max_size=300), min_size=40, max_size=40))
def test_hostile_payloads_over_the_broker(amqp_url: str, bodies: list[bytes]) -> None:
    asyncio.run(scenario(amqp_url, bodies))
