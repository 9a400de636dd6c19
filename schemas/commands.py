"""Commands published by strategy services to the worker.

Money is carried as decimal *strings* (never JSON numbers, which most
producers round through binary floats); the worker converts them to
``Decimal`` after the pattern check. Unknown fields are rejected: a worker must
never execute an order while ignoring an instruction it does not understand.

Each command gets exactly one *outcome* event keyed by its own ``command_id``:
a PlaceOrder ends with its order's terminal event (filled, canceled, rejected,
failed); a CancelOrder with ``cancel_done`` or ``cancel_rejected``; a
CancelAll with ``cancel_all_done`` or ``cancel_rejected``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$"

CommandId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
Account = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,32}$")]
ExchangeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,32}$")]
Symbol = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")]
DecimalStr = Annotated[str, msgspec.Meta(pattern=DECIMAL_PATTERN, max_length=40)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
MAX_ORDER_LIFETIME_S = 366 * 24 * 3600.0

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "FOK"]


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
               forbid_unknown_fields=True):
    command_id: CommandId
    account: Account
    exchange: ExchangeName
    created_at: Timestamp
    schema_version: int = 1


class PlaceOrder(_Command, frozen=True, tag="place_order"):
    """Place one order; executed at most once per (account, command_id)."""

    symbol: Symbol
    side: Side
    type: OrderType
    amount: DecimalStr
    price: DecimalStr | None = None
    """Limit price; for market orders an optional reference price for slippage."""
    time_in_force: TimeInForce = "GTC"
    max_slippage_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 50
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_ORDER_LIFETIME_S)] | None = None
    """Cancel the order this long after it was placed; absent: it rests until filled or
    canceled. The command itself is acked at acceptance, whatever the order's lifetime."""


class CancelOrder(_Command, frozen=True, tag="cancel_order"):
    """Cancel the order placed by ``target_command_id`` on the same account."""

    target_command_id: CommandId
    symbol: Symbol | None = None
    """Optional: the worker knows the symbol of every order it follows."""


class CancelAll(_Command, frozen=True, tag="cancel_all"):
    """Cancel every open order this system placed for the account (optionally one symbol)."""

    symbol: Symbol | None = None


Command = PlaceOrder | CancelOrder | CancelAll

MAX_COMMAND_BYTES = 16 * 1024

_decoder = msgspec.json.Decoder(Command)
_encoder = msgspec.json.Encoder()


def decode_command(body: bytes) -> Command:
    """Decode one command; raises ``msgspec.DecodeError``/``ValidationError``."""
    if len(body) > MAX_COMMAND_BYTES:
        raise msgspec.ValidationError(f"command larger than {MAX_COMMAND_BYTES} bytes")
    command: Command = _decoder.decode(body)
    return command


def encode_command(command: Command) -> bytes:
    return _encoder.encode(command)
