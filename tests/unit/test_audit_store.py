"""SQLite audit store: append-only, versioned schema with forward migration, new columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.audit_events import SQLITE_V1, V1_COLUMNS, order_events, rejected
from worker.audit.sqlite import SqliteStore
from worker.audit.store import SCHEMA_VERSION, MemoryStore, StoreError, row


def _indexes(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


async def test_new_store_has_columns_indexes_and_version(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = SqliteStore(str(path))
    assert await store.append([*order_events("ow-1"), rejected("ow-2")]) == 3
    history = await store.history("ow-1")
    assert [(r["side"], r["fee_currency"]) for r in history] == [("buy", None), ("buy", "USDT")]
    assert (await store.history("ow-2"))[0]["reason"] == "risk_max_notional"
    await store.close()
    with sqlite3.connect(path) as db:
        assert {"ow_events_account_time", "ow_events_kind"} <= _indexes(db)
        assert db.execute("SELECT max(version) FROM ow_schema_version").fetchone()[0] == 2
        plan = " ".join(str(r) for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM ow_events WHERE account = 'desk1' "
            "AND occurred_at > '2026'"))
        assert "ow_events_account_time" in plan


async def test_append_only_refuses_update_delete_and_delete_all(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    store = SqliteStore(str(path))
    await store.append(order_events("ow-1"))
    await store.close()
    with sqlite3.connect(path) as db:
        for sql in ("UPDATE ow_events SET fee = '0'", "DELETE FROM ow_events WHERE 1",
                    "DELETE FROM ow_events"):  # SQLite's TRUNCATE: refused by the trigger too
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)
        assert db.execute("SELECT count(*) FROM ow_events").fetchone()[0] == 2


async def test_old_table_is_migrated_on_open_and_backfilled(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_V1)
        for event in order_events("ow-old"):
            db.execute(f"INSERT INTO ow_events ({', '.join(V1_COLUMNS)}) VALUES "
                       f"({', '.join('?' for _ in V1_COLUMNS)})", row(event)[:14])
    db.close()
    store = SqliteStore(str(path), create=False)  # even a read migrates an existing store
    history = await store.history("ow-old")
    assert [r["fee_currency"] for r in history] == [None, "USDT"]
    assert {r["side"] for r in history} == {"buy"}
    assert await store.append([rejected("ow-new")]) == 1
    await store.close()
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT version FROM ow_schema_version")] == [2]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE ow_events SET side = 'sell'")  # guard restored after backfill
    assert SCHEMA_VERSION == 2


async def test_reads_never_create_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite3"
    with pytest.raises(StoreError, match="no audit database"):
        await SqliteStore(str(missing), create=False).counts()
    assert not missing.exists()
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("this is not a database " * 100)
    with pytest.raises(StoreError, match="not a usable audit database"):
        await SqliteStore(str(junk), create=False).counts()
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    with pytest.raises(StoreError, match="holds no audit events"):
        await SqliteStore(str(empty), create=False).counts()


async def test_export_orders_by_time_and_filters_by_account(tmp_path: Path) -> None:
    for store in (SqliteStore(str(tmp_path / "e.sqlite3")), MemoryStore()):
        await store.append([*order_events("ow-b", minutes=5), *order_events("ow-a"),
                            *order_events("ow-c", account="desk2", minutes=1)])
        assert [r["event_id"] for r in await store.export()] == [
            "ow-a-a", "ow-a-f", "ow-c-a", "ow-c-f", "ow-b-a", "ow-b-f"]
        assert {r["account"] for r in await store.export("desk2")} == {"desk2"}
        await store.close()
