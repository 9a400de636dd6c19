"""SQLite audit store (WAL, one transaction per batch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiosqlite

from schemas import Event
from worker.audit.store import COLUMNS, TERMINAL_KINDS, row

SCHEMA = """
CREATE TABLE IF NOT EXISTS ow_events (
    event_id TEXT PRIMARY KEY, command_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    account TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    sequence INTEGER NOT NULL, filled TEXT NOT NULL, amount TEXT NOT NULL,
    average_price TEXT, fee TEXT NOT NULL, occurred_at TEXT NOT NULL, body TEXT NOT NULL,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
CREATE INDEX IF NOT EXISTS ow_events_cid ON ow_events (client_order_id);
CREATE INDEX IF NOT EXISTS ow_events_cmd ON ow_events (command_id);
CREATE TRIGGER IF NOT EXISTS ow_events_no_update BEFORE UPDATE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ow_events_no_delete BEFORE DELETE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
"""
_INSERT = (f"INSERT INTO ow_events ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join('?' for _ in COLUMNS)}) ON CONFLICT (event_id) DO NOTHING")
_TERMINAL = ", ".join(f"'{k}'" for k in TERMINAL_KINDS)


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            self._db = await aiosqlite.connect(self.path)
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.executescript(SCHEMA)
            await self._db.commit()
        return self._db

    async def append(self, events: Sequence[Event]) -> int:
        db = await self._conn()
        before = db.total_changes
        await db.executemany(_INSERT, [row(e) for e in events])
        await db.commit()
        return int(db.total_changes - before)

    async def history(self, key: str) -> list[dict[str, Any]]:
        db = await self._conn()
        cur = await db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM ow_events WHERE command_id = ? "
            "OR client_order_id = ? ORDER BY sequence, occurred_at", (key, key))
        return [dict(zip(COLUMNS, r, strict=True)) for r in await cur.fetchall()]

    async def counts(self) -> dict[str, int]:
        db = await self._conn()
        cur = await db.execute("SELECT kind, count(*) FROM ow_events GROUP BY kind")
        return {k: n for k, n in await cur.fetchall()}

    async def open_orders(self) -> list[str]:
        db = await self._conn()
        cur = await db.execute(
            "SELECT client_order_id FROM ow_events WHERE kind = 'order_accepted' EXCEPT "
            f"SELECT client_order_id FROM ow_events WHERE kind IN ({_TERMINAL}) ORDER BY 1")
        return [r[0] for r in await cur.fetchall()]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
