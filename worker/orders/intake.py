"""Message body -> Command or tracking record, or a Malformed verdict with whatever ids
could be read. Shard queues carry both: commands from strategies, records from the
tracker's carousel.

Accounts are canonicalized here (``schemas.ids.canonical_account``: lower case, ``-`` as
``_``): ``desk-1``, ``desk_1`` and ``Desk-1`` share one API key, so from intake on they
are one account everywhere (shard, turn, client order ids, registry, events)."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from schemas.commands import MAX_COMMAND_BYTES, Command
from schemas.ids import canonical_account
from schemas.tracking import MAX_BATCH_BYTES, TrackBatch, TrackOrder
from worker.messages import explain_json

_ID_FIELDS = ("command_id", "account", "exchange", "symbol")


@dataclass(frozen=True)
class Malformed:
    error: str
    ids: dict[str, str] = field(default_factory=dict)


def _peek(body: bytes) -> dict[str, str]:
    """Best-effort read of ids from a body that failed validation."""
    try:
        raw = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out = {}
    for key in _ID_FIELDS:
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
            out[key] = value
    return out


Inbound = Command | TrackOrder | TrackBatch
_inbound = msgspec.json.Decoder(Inbound)


def parse(body: bytes, *, tracking: bool = False) -> Inbound | Malformed:
    """Never raises: every body is a Command, a tracking record (batch) or Malformed.
    ``tracking``: it came through the tracking exchange, where batches may be larger."""
    limit = MAX_BATCH_BYTES if tracking else MAX_COMMAND_BYTES
    try:
        if len(body) > limit:
            raise msgspec.ValidationError(f"command larger than {limit} bytes")
        inbound: Inbound = _inbound.decode(body)
        if isinstance(inbound, TrackBatch):
            return inbound  # written by workers: its records carry canonical accounts
        account = canonical_account(inbound.account)
        if account != inbound.account:
            inbound = msgspec.structs.replace(inbound, account=account)
        return inbound
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        try:
            why = explain_json(exc, Command, body)
        except Exception:  # the plain-language text is a courtesy; the raw one will do
            why = str(exc)
        return Malformed(why[:500], _peek(body))
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        return Malformed(f"undecodable: {type(exc).__name__}", _peek(body))
