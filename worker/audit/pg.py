"""PostgreSQL audit store (asyncpg)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from schemas import Event
from worker.audit.store import COLUMNS, TERMINAL_KINDS, row

SCHEMA = """
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
"""
_INSERT = (f"INSERT INTO ow_events ({', '.join(COLUMNS)}) SELECT * FROM unnest("
           "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
           "$8::bigint[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[], "
           "$13::timestamptz[], $14::jsonb[]) ON CONFLICT (event_id) DO NOTHING")


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: asyncpg.Pool | None = None

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=4)
            async with self._pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock(424242)")
                try:
                    await conn.execute(SCHEMA)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(424242)")
        return self._pool

    async def append(self, events: Sequence[Event]) -> int:
        pool = await self._get()
        rows = [row(e) for e in events]
        cols = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
        cols[12] = [_ts(v) for v in cols[12]]
        status = await pool.execute(_INSERT, *cols)
        return int(status.split()[-1])

    async def history(self, key: str) -> list[dict[str, Any]]:
        pool = await self._get()
        rows = await pool.fetch(
            f"SELECT {', '.join(COLUMNS)} FROM ow_events WHERE command_id = $1 "
            "OR client_order_id = $1 ORDER BY sequence, occurred_at", key)
        return [dict(r) for r in rows]

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


def _ts(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value)
