"""AuditStore port and its implementations: in-memory, SQLite (default), PostgreSQL.

The table is append-only (UPDATE, DELETE and, on PostgreSQL, TRUNCATE are
refused by triggers) with ``event_id`` as primary key, so a redelivered event
is a no-op insert. The schema is versioned (``ow_schema_version``); opening a
store applies the forward migrations it lacks. Reading never creates a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from schemas import Event
from schemas.events import encode_event, event_kind

SCHEMA_VERSION = 2
COLUMNS = ("event_id", "command_id", "client_order_id", "account", "exchange", "symbol",
           "kind", "sequence", "filled", "amount", "average_price", "fee", "occurred_at",
           "body", "side", "fee_currency", "reason")
TERMINAL_KINDS = ("order_filled", "order_canceled", "order_rejected", "order_failed")


class StoreError(Exception):
    """The audit store is missing, unreadable or not an audit store; says which and why."""


def row(event: Event) -> tuple[Any, ...]:
    reason = getattr(event, "reason", None)
    return (event.event_id, event.command_id, event.client_order_id, event.account,
            event.exchange, event.symbol, event_kind(event), event.sequence, str(event.filled),
            str(event.amount), None if event.average_price is None else str(event.average_price),
            str(event.fee), event.occurred_at.isoformat(), encode_event(event).decode(),
            event.side, event.fee_currency, None if reason is None else str(reason))


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

    async def export(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every event (of one account), by time then sequence."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def append(self, events: Sequence[Event]) -> int:
        new = 0
        for e in events:
            if e.event_id not in self.rows:
                self.rows[e.event_id] = dict(zip(COLUMNS, row(e), strict=True))
                new += 1
        return new

    async def history(self, key: str) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if key in (r["command_id"], r["client_order_id"])]
        return sorted(rows, key=lambda r: (r["sequence"], r["occurred_at"]))

    async def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r["kind"]] = out.get(r["kind"], 0) + 1
        return out

    async def open_orders(self) -> list[str]:
        accepted = {r["client_order_id"] for r in self.rows.values()
                    if r["kind"] == "order_accepted"}
        done = {r["client_order_id"] for r in self.rows.values() if r["kind"] in TERMINAL_KINDS}
        return sorted(accepted - done)

    async def export(self, account: str | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if account in (None, r["account"])]
        return sorted(rows, key=lambda r: (r["occurred_at"], r["sequence"]))

    async def close(self) -> None:
        return None
