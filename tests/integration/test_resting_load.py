"""Issue 9 acceptance: 1,000 resting orders on one account do not slow that account's
new commands. Paper exchange, real broker; one shared paper book so the resting
orders persist while the market orders run."""

from __future__ import annotations

import asyncio
import math
import time
from statistics import median

import pytest

from schemas.events import OrderAccepted, OrderFilled
from tests.conftest import place
from tests.integration.harness import harness
from worker.exchange.paper import PaperExchange
from worker.lab.testing import StaticExchanges

ACCOUNT = "acct-load"
RESTING, MARKET = 1000, 50
# the tracker at its default rhythm (the harness' fast test values poll 20x as often)
TRACKING = {"OW_TRACK_POLL_S": "1", "OW_TRACK_CYCLE_S": "10"}
SETTLE_S = 11.0
"""Both runs wait one tracking cycle after the last acceptance, so the first round of
records (and the burst of 1,000 acceptances) is behind them."""


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def _market_latencies(amqp_url: str, exchanges: StaticExchanges, resting: int
                            ) -> list[float]:
    """Place ``resting`` GTC limits, wait for all acceptances, then send the market
    orders one by one: seconds from send to OrderFilled received, per order."""
    async with harness(amqp_url, **TRACKING) as h:
        await h.start_worker(exchanges=exchanges)
        async with h.client() as client:
            limits = [place(account=ACCOUNT, type="limit", price="20000", amount="0.001",
                            timeout_s=None)
                      for _ in range(resting)]
            for i in range(0, len(limits), 200):
                await asyncio.gather(*(client.send(c) for c in limits[i:i + 200]))
            firsts = await asyncio.gather(*(client.wait_first(c.command_id, 120)
                                            for c in limits))
            assert all(isinstance(e, OrderAccepted) for e in firsts)
            await asyncio.sleep(SETTLE_S)
            latencies = []
            for _ in range(MARKET):
                cmd = place(account=ACCOUNT, amount="0.001")
                start = time.monotonic()
                await client.send(cmd)
                final = await client.wait_terminal(cmd.command_id, 60)
                latencies.append(time.monotonic() - start)
                assert isinstance(final, OrderFilled), final
            if resting:  # still resting: the market orders did not disturb them
                for c in limits[:: max(1, resting // 20)]:
                    assert not any(not isinstance(e, OrderAccepted)
                                   for e in client.history(c.command_id))
    return latencies


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(240)
async def test_resting_orders_do_not_slow_new_commands(amqp_url: str) -> None:
    """p99 of 50 samples is their maximum, so one stall of this shared 2-core machine decides
    it: a second measurement (both runs again) is taken only if the first one fails."""
    ratios = []
    for attempt in range(2):
        book = StaticExchanges({"paper": PaperExchange()})
        baseline = await _market_latencies(amqp_url, book, 0)
        loaded = await _market_latencies(amqp_url, book, RESTING)
        assert len(baseline) == len(loaded) == MARKET
        ratios.append(p99(loaded) / p99(baseline))
        print(f"\nattempt {attempt + 1}: market command->filled p99: baseline "
              f"{p99(baseline) * 1000:.1f} ms, with {RESTING} resting "
              f"{p99(loaded) * 1000:.1f} ms, ratio {ratios[-1]:.2f}; medians "
              f"{median(baseline) * 1000:.1f} and {median(loaded) * 1000:.1f} ms")
        if ratios[-1] <= 2:
            break
    assert ratios[-1] <= 2, ratios
