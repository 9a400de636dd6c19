"""Message body -> Command, or a Malformed verdict with whatever ids could be read."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from schemas.commands import Command, decode_command

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


def parse(body: bytes) -> Command | Malformed:
    """Never raises: every body is either a Command or Malformed."""
    try:
        return decode_command(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Malformed(str(exc)[:500], _peek(body))
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        return Malformed(f"undecodable: {type(exc).__name__}", _peek(body))
