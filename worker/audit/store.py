"""AuditStore port and its implementations: in-memory, SQLite (default), PostgreSQL.

The table is append-only (UPDATE/DELETE are refused by triggers) with
``event_id`` as primary key, so a redelivered event is a no-op insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from schemas import Event
from schemas.events import encode_event, event_kind

COLUMNS = ("event_id", "command_id", "client_order_id", "account", "exchange", "symbol",
           "kind", "sequence", "filled", "amount", "average_price", "fee", "occurred_at",
           "body")


def row(event: Event) -> tuple[Any, ...]:
    return (event.event_id, event.command_id, event.client_order_id, event.account,
            event.exchange, event.symbol, event_kind(event), event.sequence, str(event.filled),
            str(event.amount), None if event.average_price is None else str(event.average_price),
            str(event.fee), event.occurred_at.isoformat(), encode_event(event).decode())


class AuditStore(Protocol):
    """Append-only event store."""

    async def append(self, events: Sequence[Event]) -> int:
        """Insert events not stored yet; return how many were new."""
        ...

    async def history(self, key: str) -> list[dict[str, Any]]:
        """All events of an order, by command_id or client_order_id, in sequence order."""
        ...

    async def counts(self) -> dict[str, int]:
        """Events per kind."""
        ...

    async def open_orders(self) -> list[str]:
        """client_order_ids accepted but without a terminal event."""
        ...

    async def close(self) -> None: ...


TERMINAL_KINDS = ("order_filled", "order_canceled", "order_rejected", "order_failed")


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[Any, ...]] = {}

    async def append(self, events: Sequence[Event]) -> int:
        new = 0
        for e in events:
            if e.event_id not in self.rows:
                self.rows[e.event_id] = row(e)
                new += 1
        return new

    async def history(self, key: str) -> list[dict[str, Any]]:
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in self.rows.values()
                if key in (r[1], r[2])]
        return sorted(rows, key=lambda r: r["sequence"])

    async def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r[6]] = out.get(r[6], 0) + 1
        return out

    async def open_orders(self) -> list[str]:
        accepted = {r[2] for r in self.rows.values() if r[6] == "order_accepted"}
        done = {r[2] for r in self.rows.values() if r[6] in TERMINAL_KINDS}
        return sorted(accepted - done)

    async def close(self) -> None:
        return None
