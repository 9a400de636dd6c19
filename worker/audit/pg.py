"""PostgreSQL audit store (asyncpg, versioned schema, TRUNCATE refused too)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from schemas import Event
from worker.audit.store import COLUMNS, SCHEMA_VERSION, TERMINAL_KINDS, StoreError, row

_LOCK = 424242
# version -> script; version 1 is the table as first released (no version table)
MIGRATIONS = {
    1: """
CREATE TABLE IF NOT EXISTS ow_events (
    event_id TEXT PRIMARY KEY, command_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    account TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    sequence BIGINT NOT NULL, filled NUMERIC NOT NULL, amount NUMERIC NOT NULL,
    average_price NUMERIC, fee NUMERIC NOT NULL, occurred_at TIMESTAMPTZ NOT NULL,
    body JSONB NOT NULL, received_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS ow_events_cid ON ow_events (client_order_id);
CREATE INDEX IF NOT EXISTS ow_events_cmd ON ow_events (command_id);
CREATE OR REPLACE FUNCTION ow_events_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'ow_events is append-only'; END $$ LANGUAGE plpgsql;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'ow_events_append_only') THEN
    CREATE TRIGGER ow_events_append_only BEFORE UPDATE OR DELETE ON ow_events
      FOR EACH ROW EXECUTE FUNCTION ow_events_append_only();
  END IF;
END $$;
""",
    2: """
ALTER TABLE ow_events ADD COLUMN IF NOT EXISTS side TEXT,
    ADD COLUMN IF NOT EXISTS fee_currency TEXT, ADD COLUMN IF NOT EXISTS reason TEXT;
ALTER TABLE ow_events DISABLE TRIGGER ow_events_append_only;
UPDATE ow_events SET side = body->>'side', fee_currency = body->>'fee_currency',
    reason = body->>'reason';
ALTER TABLE ow_events ENABLE TRIGGER ow_events_append_only;
CREATE INDEX IF NOT EXISTS ow_events_account_time ON ow_events (account, occurred_at);
CREATE INDEX IF NOT EXISTS ow_events_kind ON ow_events (kind);
DROP TRIGGER IF EXISTS ow_events_no_truncate ON ow_events;
CREATE TRIGGER ow_events_no_truncate BEFORE TRUNCATE ON ow_events
    FOR EACH STATEMENT EXECUTE FUNCTION ow_events_append_only();
""",
}
_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS ow_schema_version (version INTEGER PRIMARY KEY, "
                  "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
_TYPES = ("text", "text", "text", "text", "text", "text", "text", "bigint", "numeric", "numeric",
          "numeric", "numeric", "timestamptz", "jsonb", "text", "text", "text")
_INSERT = (f"INSERT INTO ow_events ({', '.join(COLUMNS)}) SELECT * FROM unnest("
           + ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, 1))
           + ") ON CONFLICT (event_id) DO NOTHING")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM ow_events"
_OCCURRED = COLUMNS.index("occurred_at")


async def schema_version(conn: asyncpg.Connection) -> int:
    """0: empty; 1: the unversioned first table; else the recorded version."""
    if await conn.fetchval("SELECT to_regclass('ow_schema_version')") is not None:
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM ow_schema_version"))
    return 1 if await conn.fetchval("SELECT to_regclass('ow_events')") is not None else 0


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the missing forward migrations in one transaction, under an advisory lock."""
    await conn.execute(f"SELECT pg_advisory_lock({_LOCK})")
    try:
        current = await schema_version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(f"audit schema version {current} is newer than this orderworker "
                             f"({SCHEMA_VERSION}): upgrade orderworker")
        async with conn.transaction():
            for version in range(current + 1, SCHEMA_VERSION + 1):
                await conn.execute(_VERSION_TABLE)
                await conn.execute(MIGRATIONS[version])
                await conn.execute("INSERT INTO ow_schema_version (version) VALUES ($1)",
                                   version)
        return SCHEMA_VERSION
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({_LOCK})")


class PostgresStore:
    """``create=False`` (reads): the database must already hold an audit table."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url, self.create = url, create
        self._pool: asyncpg.Pool | None = None

    async def _get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        try:
            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot open the audit database: {exc}") from None
        try:
            async with pool.acquire() as conn:
                if not self.create and await schema_version(conn) == 0:
                    raise StoreError("the database holds no audit events (table ow_events)")
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return pool

    async def append(self, events: Sequence[Event]) -> int:
        pool = await self._get()
        rows = [row(e) for e in events]
        cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
        cols[_OCCURRED] = [datetime.fromisoformat(v) for v in cols[_OCCURRED]]
        status = await pool.execute(_INSERT, *cols)
        return int(status.split()[-1])

    async def _select(self, where: str, *args: Any) -> list[dict[str, Any]]:
        pool = await self._get()
        return [dict(r) for r in await pool.fetch(f"{_SELECT} {where}", *args)]

    async def history(self, key: str) -> list[dict[str, Any]]:
        return await self._select("WHERE command_id = $1 OR client_order_id = $1 "
                                  "ORDER BY sequence, occurred_at", key)

    async def export(self, account: str | None = None) -> list[dict[str, Any]]:
        if account is None:
            return await self._select("ORDER BY occurred_at, sequence")
        return await self._select("WHERE account = $1 ORDER BY occurred_at, sequence", account)

    async def counts(self) -> dict[str, int]:
        pool = await self._get()
        return {r["kind"]: r["n"] for r in await pool.fetch(
            "SELECT kind, count(*) AS n FROM ow_events GROUP BY kind")}

    async def open_orders(self) -> list[str]:
        pool = await self._get()
        rows = await pool.fetch(
            "SELECT client_order_id FROM ow_events WHERE kind = 'order_accepted' EXCEPT "
            "SELECT client_order_id FROM ow_events WHERE kind = ANY($1::text[]) ORDER BY 1",
            list(TERMINAL_KINDS))
        return [r[0] for r in rows]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
