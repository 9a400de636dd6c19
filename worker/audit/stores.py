"""Pick an audit store by URL. Sits above both stores, so neither imports it back."""

from __future__ import annotations

from worker.audit.store import AuditStore


def open_store(url: str) -> AuditStore:
    """``postgresql://...`` -> PostgresStore; anything else is a SQLite path."""
    if url.startswith(("postgresql://", "postgres://")):
        from worker.audit.pg import PostgresStore

        return PostgresStore(url)
    from worker.audit.sqlite import SqliteStore

    return SqliteStore(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
