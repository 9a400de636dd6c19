"""Short chaos run on the real broker: worker processes SIGKILLed and crashing at random
steps, the broker restarted once, faults on every exchange endpoint."""

from __future__ import annotations

import os

import pytest

from worker.lab.chaos import Chaos, ok, run


@pytest.mark.slow
@pytest.mark.restarts_broker
@pytest.mark.timeout(400)
async def test_chaos_nothing_lost_nothing_doubled(amqp_url: str) -> None:
    chaos = Chaos(amqp_url, orders=400, workers=2, rate_per_s=60, kill_every_s=3,
                  broker_restart=os.environ.get("OW_CHAOS_BROKER_RESTART", "1") == "1",
                  crashes_expected=6)
    result = await run(chaos, drain_timeout_s=180, drain_max_s=300)  # within the timeout
    print(result)
    assert ok(result), result
    assert result["commands_with_exactly_one_order"] == result["commands_placed"]
    assert result["commands_placed"] >= 380
    assert result["worker_sigkills"] + result["worker_crash_points"] >= 2  # type: ignore[operator]
    assert result["faults_injected"] > 20  # type: ignore[operator]
