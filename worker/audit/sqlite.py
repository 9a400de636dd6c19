"""SQLite audit store (WAL, one transaction per batch, versioned schema)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiosqlite

from schemas import Event
from worker.audit.store import COLUMNS, SCHEMA_VERSION, TERMINAL_KINDS, StoreError, row

_GUARDS = """
CREATE TRIGGER IF NOT EXISTS ow_events_no_update BEFORE UPDATE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ow_events_no_delete BEFORE DELETE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
"""
# version -> script; version 1 is the table as first released (no version table)
MIGRATIONS = {
    1: """
CREATE TABLE IF NOT EXISTS ow_events (
    event_id TEXT PRIMARY KEY, command_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    account TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    sequence INTEGER NOT NULL, filled TEXT NOT NULL, amount TEXT NOT NULL,
    average_price TEXT, fee TEXT NOT NULL, occurred_at TEXT NOT NULL, body TEXT NOT NULL,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
CREATE INDEX IF NOT EXISTS ow_events_cid ON ow_events (client_order_id);
CREATE INDEX IF NOT EXISTS ow_events_cmd ON ow_events (command_id);
""" + _GUARDS,
    2: """
ALTER TABLE ow_events ADD COLUMN side TEXT;
ALTER TABLE ow_events ADD COLUMN fee_currency TEXT;
ALTER TABLE ow_events ADD COLUMN reason TEXT;
DROP TRIGGER ow_events_no_update;
UPDATE ow_events SET side = json_extract(body, '$.side'),
    fee_currency = json_extract(body, '$.fee_currency'), reason = json_extract(body, '$.reason');
CREATE INDEX IF NOT EXISTS ow_events_account_time ON ow_events (account, occurred_at);
CREATE INDEX IF NOT EXISTS ow_events_kind ON ow_events (kind);
""" + _GUARDS,
}
_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS ow_schema_version (version INTEGER PRIMARY KEY, "
                  "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
_INSERT = (f"INSERT INTO ow_events ({', '.join(COLUMNS)}) VALUES "
           f"({', '.join('?' for _ in COLUMNS)}) ON CONFLICT (event_id) DO NOTHING")
_TERMINAL = ", ".join(f"'{k}'" for k in TERMINAL_KINDS)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM ow_events"


async def _tables(db: aiosqlite.Connection) -> set[str]:
    cur = await db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in await cur.fetchall()}


async def schema_version(db: aiosqlite.Connection) -> int:
    """0: empty; 1: the unversioned first table; else the recorded version."""
    tables = await _tables(db)
    if "ow_schema_version" in tables:
        cur = await db.execute("SELECT max(version) FROM ow_schema_version")
        found = await cur.fetchone()
        return int(found[0] or 0) if found else 0
    return 1 if "ow_events" in tables else 0


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply the missing forward migrations in one transaction; return the new version."""
    current = await schema_version(db)
    if current > SCHEMA_VERSION:
        raise StoreError(f"audit schema version {current} is newer than this orderworker "
                         f"({SCHEMA_VERSION}): upgrade orderworker")
    if current == SCHEMA_VERSION:
        return current
    script = "".join(MIGRATIONS[v] for v in range(current + 1, SCHEMA_VERSION + 1))
    versions = "".join(f"INSERT INTO ow_schema_version (version) VALUES ({v});"
                       for v in range(current + 1, SCHEMA_VERSION + 1))
    await db.executescript(f"BEGIN; {_VERSION_TABLE}; {script} {versions} COMMIT;")
    return SCHEMA_VERSION


class SqliteStore:
    """``create=False`` (reads): the file must already hold an audit table."""

    def __init__(self, path: str, *, create: bool = True) -> None:
        self.path, self.create = path, create
        self._uri = f"file:{quote(os.path.abspath(path))}?mode=rw"
        self._db: aiosqlite.Connection | None = None

    def _check(self) -> None:
        """Open with plain sqlite3 first (in a thread): a bad path fails here, cleanly,
        and a read (mode=rw) never creates the file."""
        try:
            db = (sqlite3.connect(self.path) if self.create
                  else sqlite3.connect(self._uri, uri=True))
        except sqlite3.OperationalError as exc:
            what = "cannot create" if self.create else "no"
            raise StoreError(f"{what} audit database at {self.path!r} ({exc}); set --db or "
                             "OW_AUDIT_DB") from None
        try:
            tables = {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path!r} is not a usable audit database: {exc}") from None
        finally:
            db.close()
        if not self.create and "ow_events" not in tables:
            raise StoreError(f"{self.path!r} holds no audit events (table ow_events)")

    async def _conn(self) -> aiosqlite.Connection:
        if self._db is not None:
            return self._db
        await asyncio.to_thread(self._check)
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await migrate(db)
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise StoreError(f"{self.path!r} is not a usable audit database: {exc}") from None
        except BaseException:
            await db.close()
            raise
        self._db = db
        return db

    async def append(self, events: Sequence[Event]) -> int:
        db = await self._conn()
        before = db.total_changes
        await db.executemany(_INSERT, [row(e) for e in events])
        await db.commit()
        return int(db.total_changes - before)

    async def _select(self, where: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        db = await self._conn()
        cur = await db.execute(f"{_SELECT} {where}", args)
        return [dict(zip(COLUMNS, r, strict=True)) for r in await cur.fetchall()]

    async def history(self, key: str) -> list[dict[str, Any]]:
        return await self._select("WHERE command_id = ? OR client_order_id = ? "
                                  "ORDER BY sequence, occurred_at", (key, key))

    async def export(self, account: str | None = None) -> list[dict[str, Any]]:
        if account is None:
            return await self._select("ORDER BY occurred_at, sequence", ())
        return await self._select("WHERE account = ? ORDER BY occurred_at, sequence",
                                  (account,))

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
