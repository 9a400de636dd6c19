"""Derivatives positions of a simulated account, derived from its fills (one-way mode)."""

from __future__ import annotations

from decimal import Decimal

from worker.exchange.models import OrderState


def net_positions(orders: list[OrderState]) -> dict[str, tuple[Decimal, Decimal | None]]:
    """symbol -> (signed size, average entry price); a flat symbol has entry None.

    Entry price averages the fills that opened or grew the position; a reducing
    fill keeps it, a fill through zero restarts it at that fill's price."""
    out: dict[str, tuple[Decimal, Decimal | None]] = {}
    for o in orders:
        if not o.filled or o.average is None:
            continue
        size, entry = out.get(o.symbol, (Decimal(0), None))
        delta = o.filled if o.side == "buy" else -o.filled
        new = size + delta
        if size == 0 or (size > 0) == (delta > 0):
            entry = ((entry or Decimal(0)) * abs(size) + o.average * abs(delta)) / abs(new)
        elif new != 0 and (new > 0) != (size > 0):
            entry = o.average
        out[o.symbol] = (new, entry if new != 0 else None)
    return out
