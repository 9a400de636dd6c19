"""Per-account FIFO turns inside one worker.

``enter(account)`` is called synchronously in arrival order; the returned turn
is an async context manager that waits for the previous turn of the same
account to end. Different accounts run concurrently.
"""

from __future__ import annotations

import asyncio


class Turn:
    def __init__(self, seq: AccountSequencer, account: str,
                 prev: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._seq, self._account, self._prev, self._mine = seq, account, prev, mine

    async def __aenter__(self) -> None:
        if self._prev is not None:
            await asyncio.shield(self._prev)

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """End the turn (idempotent); also called when a handler never entered it."""
        if not self._mine.done():
            self._mine.set_result(None)
        if self._seq._tails.get(self._account) is self._mine:
            del self._seq._tails[self._account]


class AccountSequencer:
    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    def enter(self, account: str) -> Turn:
        prev = self._tails.get(account)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[account] = mine
        return Turn(self, account, prev, mine)

    def __len__(self) -> int:
        return len(self._tails)
