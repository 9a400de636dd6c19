"""Pick an audit store by URL. Sits above both stores, so neither imports it back."""

from __future__ import annotations

from worker.audit.store import AuditStore


def open_store(url: str, *, create: bool = True) -> AuditStore:
    """``postgresql://...`` -> PostgresStore; anything else is a SQLite path.
    ``create=False`` for reads: a missing store is a StoreError, never created."""
    if url.startswith(("postgresql://", "postgres://")):
        from worker.audit.pg import PostgresStore

        return PostgresStore(url, create=create)
    from worker.audit.sqlite import SqliteStore

    return SqliteStore(url.removeprefix("sqlite:///").removeprefix("sqlite://"), create=create)
