"""Reads of a shard's memo queue for the tracker (worker.broker.memo): shared between
concurrent callers, retried while the queue cannot be read (between leaders after a node
died), within the intake budget; after that ``FactsUnreadable`` reaches the consumer,
which hands the command back undecided (never a refusal: no handler catches it)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from schemas.tracking import TrackOrder
from worker.errors import FactsUnreadable
from worker.ports import Memory

log = logging.getLogger(__name__)


class Recall:
    def __init__(self, memory: Memory, budget_s: float) -> None:
        self.memory = memory
        self.budget_s = budget_s
        self._read_at: dict[int, float] = {}
        """Per shard: when the last read folded in began (monotonic)."""
        self._locks: dict[int, asyncio.Lock] = {}

    async def since(self, shard: int, since: float,
                    fold: Callable[[Sequence[TrackOrder]], None]) -> None:
        """Return once a read of ``shard``'s facts that began at or after ``since`` was
        folded in by ``fold``: one read serves every caller waiting meanwhile."""
        if self._read_at.get(shard, float("-inf")) >= since:
            return
        async with self._locks.setdefault(shard, asyncio.Lock()):
            if self._read_at.get(shard, float("-inf")) >= since:
                return
            started, attempt = time.monotonic(), 0
            while True:
                try:
                    facts = await self.memory.recall(shard)
                    break
                except (FactsUnreadable, ConnectionError, TimeoutError) as exc:
                    attempt += 1
                    wait = min(2.0, 0.2 * 2**attempt)
                    if time.monotonic() + wait - started > self.budget_s:
                        raise FactsUnreadable(f"shard {shard}: {exc}") from exc
                    log.warning("memo queue of shard %d not read (%s); again in %.1fs",
                                shard, exc, wait)
                    await asyncio.sleep(wait)
            fold(facts)
            self._read_at[shard] = started
