"""Commands published by strategy services to the worker.

Money is carried as decimal *strings* (never JSON numbers, which most
producers round through binary floats); the worker converts them to
``Decimal`` after the pattern check. Unknown fields are rejected: a worker must
never execute an order while ignoring an instruction it does not understand.
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

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC", "FOK"]


class _Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
               forbid_unknown_fields=True):
    command_id: CommandId
    account: Account
    exchange: ExchangeName
    symbol: Symbol
    created_at: Timestamp
    schema_version: int = 1


class PlaceOrder(_Command, frozen=True, tag="place_order"):
    """Place one order; executed at most once per (account, command_id)."""

    side: Side
    type: OrderType
    amount: DecimalStr
    price: DecimalStr | None = None
    """Limit price; for market orders an optional reference price for slippage."""
    time_in_force: TimeInForce = "GTC"
    max_slippage_bps: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 50
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=1500)] = 30.0
    """Live time of the order before it is canceled. The command stays unacked meanwhile,
    so the broker's consumer_timeout must exceed it."""


class CancelOrder(_Command, frozen=True, tag="cancel_order"):
    """Cancel the order placed by ``target_command_id`` on the same account."""

    target_command_id: CommandId


Command = PlaceOrder | CancelOrder

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
