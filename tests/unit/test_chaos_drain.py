"""The chaos runner's drain: past its deadline it waits while outcomes still arrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from worker.lab.chaos import _drain


class Log:
    def __init__(self) -> None:
        self.done: set[str] = set()

    def terminal_commands(self) -> set[str]:
        return self.done


class Sim:
    async def open_client_ids(self) -> list[str]:
        return ["ow-open"]


async def _feed(log: Log, ids: list[str], every_s: float) -> None:
    for i in ids:
        await asyncio.sleep(every_s)
        log.done.add(i)


async def test_outcomes_still_arriving_extend_the_deadline() -> None:
    log, ids = Log(), [f"c{i}" for i in range(10)]
    feed = asyncio.create_task(_feed(log, ids, 0.05))
    out = await _drain(set(ids), cast(Any, log), cast(Any, Sim()), 0.1, 0.0, asyncio.Event(),
                       quiet_s=0.3, tick_s=0.01)
    await feed
    assert log.done == set(ids)  # all came, the last ones after the first deadline
    assert out["drain_extended"] is True and out["open_at_deadline"] == 1
    assert 0 < out["without_terminal_at_deadline"] < 10  # type: ignore[operator]


async def test_no_progress_ends_the_drain_quiet_s_after_the_deadline() -> None:
    log = Log()
    stop = asyncio.Event()
    start = time.monotonic()
    out = await _drain({"c1"}, cast(Any, log), cast(Any, Sim()), 0.1, 0.0, stop,
                       quiet_s=0.2, tick_s=0.01)
    assert stop.is_set() and out["without_terminal_at_deadline"] == 1
    assert 0.2 <= time.monotonic() - start < 1.0


async def test_the_extension_is_capped() -> None:
    log, ids = Log(), [f"c{i}" for i in range(100)]
    feed = asyncio.create_task(_feed(log, ids, 0.02))
    start = time.monotonic()
    await _drain(set(ids), cast(Any, log), cast(Any, Sim()), 0.1, 0.0, asyncio.Event(),
                 max_s=0.3, quiet_s=10, tick_s=0.01)
    assert time.monotonic() - start < 0.6 and log.done != set(ids)
    feed.cancel()
