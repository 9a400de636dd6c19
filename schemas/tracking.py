"""Tracking records: the durable state of the order tracker (internal, worker to worker).

A record names one order the system owns and is not done with. Records circulate
per shard: ``<p>.track.<k>`` holds each record for ``track_cycle_s`` (message
TTL), then dead-letters it through ``<p>.tracking`` back into the shard's command
queue, where the shard's owner reads it, refreshes its in-memory tracker and
publishes a fresh copy. So no record is ever unacked for long, and whichever
worker owns the shard after a crash or failover learns every order within one
cycle. Only records that arrive through ``<p>.tracking`` are trusted.

Records travel in batches (``TrackBatch``, up to ``MAX_BATCH`` records of one shard
per message): the owner renews whatever came round in one confirmed publish, so a
shard with 1,000 resting orders costs a handful of messages per cycle, not 1,000,
and the orders' records never queue up in front of the shard's commands.

Phases:
* ``open``      the exchange accepted the order (``exchange_order_id`` known);
* ``pending``   a create may have reached the exchange, outcome unknown: resolve by
  client order id (found -> open; confirmed absent -> OrderFailed(not_placed));
* ``tombstone`` a cancel found no order: a later PlaceOrder with this client order id
  must not be placed (until ``expires_at``);
* ``done``      a command's one outcome (``outcome``) when no order carries it: a
  refused PlaceOrder, or any CancelOrder. A copy of the command re-publishes that event
  (same event id) instead of deciding afresh (until ``expires_at``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.events import Event

Phase = Literal["open", "pending", "tombstone", "done"]


class TrackOrder(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                 tag="track_order", forbid_unknown_fields=True):
    command_id: str
    account: str
    exchange: str
    symbol: str
    client_order_id: str
    phase: Phase = "open"
    side: str | None = None
    type: str | None = None
    amount: str = "0"
    price: str | None = None
    time_in_force: str = "GTC"
    exchange_order_id: str | None = None
    placed_at: float | None = None
    """Epoch seconds the order was placed (exchange timestamp when known)."""
    deadline_at: float | None = None
    """Epoch seconds after which the order is canceled (PlaceOrder.timeout_s)."""
    sent_before: float | None = None
    """pending: epoch seconds by which every create for it was sent."""
    expires_at: float | None = None
    """tombstone, done: when it may be forgotten."""
    cancel_commands: tuple[str, ...] = ()
    """CancelOrder command ids waiting for this order's terminal state."""
    cancel_requested: bool = False
    outcome: Event | None = None
    """done: the command's outcome, published once and re-published by copies."""
    schema_version: int = 1


MAX_BATCH = 256
"""Records per batch message (about 100 KB)."""
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Largest tracking message a worker accepts."""


class TrackBatch(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                 tag="track_batch", forbid_unknown_fields=True):
    """Records of one shard, renewed together."""

    records: tuple[TrackOrder, ...]
    schema_version: int = 1


_decoder = msgspec.json.Decoder(TrackOrder | TrackBatch)
_encoder = msgspec.json.Encoder()


def encode_record(record: TrackOrder | TrackBatch) -> bytes:
    return _encoder.encode(record)


def decode_record(body: bytes) -> TrackOrder | TrackBatch:
    record: TrackOrder | TrackBatch = _decoder.decode(body)
    return record


def batches(records: list[TrackOrder]) -> list[TrackBatch]:
    """``records`` (one shard's) in messages of at most ``MAX_BATCH``."""
    return [TrackBatch(records=tuple(records[i:i + MAX_BATCH]))
            for i in range(0, len(records), MAX_BATCH)]
