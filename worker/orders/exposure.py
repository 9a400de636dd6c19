"""Worst-case resting amounts per (account, exchange, symbol): what the live orders the
tracker follows could still add to a position if each filled completely.

Kept incrementally by the tracker (every registry change and every record written
back), so the pre-trade risk check costs the same with 1 or 1,000 resting orders,
and rebuilt from the registry on the tracker's housekeeping pass (about once a
second), which bounds any drift from a change made outside those paths."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from worker.orders.registry import Entry

Key = tuple[str, str, str]
ZERO = Decimal(0)


class Exposure:
    def __init__(self) -> None:
        self._sums: dict[Key, list[Decimal]] = {}
        self._counted: dict[str, tuple[Key, int, Decimal]] = {}

    def get(self, account: str, exchange: str, symbol: str) -> tuple[Decimal, Decimal]:
        """(buy, sell) amounts resting on ``symbol``."""
        sums = self._sums.get((account, exchange, symbol))
        return (sums[0], sums[1]) if sums else (ZERO, ZERO)

    def update(self, entry: Entry) -> None:
        """Count ``entry`` as it is now (live orders only)."""
        cid = entry.ref.client_order_id
        self.remove(cid)
        side = {"buy": 0, "sell": 1}.get(entry.side or "")
        amount = entry.amount_value()
        if side is None or amount is None or not entry.live:
            return
        key = (entry.ref.account, entry.ref.exchange, entry.ref.symbol)
        sums = self._sums.setdefault(key, [ZERO, ZERO])
        sums[side] += amount
        self._counted[cid] = (key, side, amount)

    def remove(self, cid: str) -> None:
        counted = self._counted.pop(cid, None)
        if counted is not None:
            key, side, amount = counted
            self._sums[key][side] -= amount

    def rebuild(self, entries: Iterable[Entry]) -> None:
        self._sums.clear()
        self._counted.clear()
        for e in entries:
            if e.live:  # finished orders (most of the registry at a steady rate) add nothing
                self.update(e)
