"""PostgreSQL audit store: TRUNCATE refused, schema versioned, an old table migrated."""

from __future__ import annotations

import pytest

from tests.audit_events import order_events, rejected
from worker.audit.pg import MIGRATIONS, PostgresStore
from worker.audit.store import StoreError


async def test_truncate_update_delete_are_refused(pg_url: str) -> None:
    import asyncpg

    store = PostgresStore(pg_url)
    assert await store.append([*order_events("ow-pg"), rejected("ow-pg-r")]) == 3
    conn = await asyncpg.connect(pg_url)
    try:
        for sql in ("TRUNCATE ow_events", "DELETE FROM ow_events", "UPDATE ow_events SET fee = 0"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)
        assert await conn.fetchval("SELECT count(*) FROM ow_events") == 3
        indexes = {r[0] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ow_events'")}
        assert {"ow_events_account_time", "ow_events_kind"} <= indexes
        assert await conn.fetchval("SELECT max(version) FROM ow_schema_version") == 2
    finally:
        await conn.close()
    history = await store.history("ow-pg")
    assert [(r["side"], r["fee_currency"]) for r in history] == [("buy", None), ("buy", "USDT")]
    assert (await store.history("ow-pg-r"))[0]["reason"] == "risk_max_notional"
    assert [r["account"] for r in await store.export("desk1")] == ["desk1"] * 3
    await store.close()


async def test_old_table_is_migrated_on_open(pg_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    await conn.execute(MIGRATIONS[1])  # the table as first released, no version table
    await conn.execute(
        "INSERT INTO ow_events (event_id, command_id, client_order_id, account, exchange, "
        "symbol, kind, sequence, filled, amount, fee, occurred_at, body) VALUES ('e1', 'c1', "
        "'ow-old', 'desk1', 'paper', 'BTC/USDT', 'order_rejected', 1, 0, 1, 0, now(), "
        """'{"side": "sell", "reason": "stale", "fee_currency": "BTC"}')""")
    await conn.close()
    store = PostgresStore(pg_url, create=False)
    [old] = await store.history("ow-old")
    assert (old["side"], old["reason"], old["fee_currency"]) == ("sell", "stale", "BTC")
    assert await store.append(order_events("ow-new")) == 2
    await store.close()


async def test_reading_an_empty_database_is_a_clear_error(pg_url: str) -> None:
    with pytest.raises(StoreError, match="holds no audit events"):
        await PostgresStore(pg_url, create=False).counts()
    bad = pg_url.rsplit("/", 1)[0] + "/ow_h3_no_such_db"
    with pytest.raises(StoreError, match="cannot open the audit database"):
        await PostgresStore(bad, create=False).counts()
