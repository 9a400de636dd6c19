"""Audit consumer: every event into an append-only store, deduplicated by event_id."""
