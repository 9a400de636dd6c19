"""Semantic validation of decoded commands (the schema already checked shapes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgspec

from schemas import PlaceOrder, client_order_id
from worker.errors import CommandError, StaleCommand


class ValidOrder(msgspec.Struct, frozen=True, kw_only=True):
    command: PlaceOrder
    amount: Decimal
    price: Decimal | None
    client_order_id: str


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pattern-checked already; belt and braces
        raise CommandError(f"{field} is not a decimal: {text!r}") from exc
    if not value.is_finite() or value <= 0:
        raise CommandError(f"{field} must be a positive finite decimal, got {text}")
    return value


def validate_place(cmd: PlaceOrder) -> ValidOrder:
    amount = _decimal(cmd.amount, "amount")
    price = _decimal(cmd.price, "price") if cmd.price is not None else None
    if cmd.type == "limit" and price is None:
        raise CommandError("limit order requires price")
    if cmd.type == "market" and cmd.time_in_force == "FOK":
        raise CommandError("market orders take GTC or IOC, not FOK")
    return ValidOrder(command=cmd, amount=amount, price=price,
                      client_order_id=client_order_id(cmd.account, cmd.command_id))


def check_fresh(created_at: datetime, now: datetime, max_age_s: float, skew_s: float) -> None:
    """Refuse to *place* commands that are too old or from the future; a stale
    command whose order already exists is still reconciled, never dropped."""
    age = (now - created_at).total_seconds()
    if age < -skew_s:
        raise CommandError(f"created_at {created_at.isoformat()} is {-age:.1f}s in the future "
                           f"(more than the tolerated clock skew of {skew_s:g}s): check the "
                           "sender's clock")
    if age > max_age_s:
        raise StaleCommand(f"command is {age:.1f}s old (max {max_age_s:.0f}s)")
