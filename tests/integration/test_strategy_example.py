"""examples/strategy.py against the real broker and a worker on the paper exchange."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.integration.harness import harness

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "strategy.py"


async def test_strategy_example_places_watches_cancels_and_cancels_all(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), "--amqp-url", amqp_url, "--prefix", h.prefix,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()[-2000:]
    assert "cancel: cancel_done (canceled)" in text
    assert "events: order_accepted, order_canceled" in text
    assert "cancel_all: cancel_all_done" in text and "market: order_filled" in text
    assert "invalid: amount must be a decimal string like '0.01'" in text
