"""Build events from commands and exchange order states (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from schemas import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFailed,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    RejectReason,
    event_id,
)
from schemas.commands import Command
from schemas.events import SEQ_ACCEPTED, SEQ_FILLED, SEQ_FINAL
from worker.exchange.models import OrderState


def _now() -> datetime:
    return datetime.now(UTC)


def _common(cmd: Command, state: OrderState, cid: str,
            command_id: str | None = None) -> dict[str, object]:
    return {
        "command_id": command_id or cmd.command_id, "account": cmd.account,
        "exchange": cmd.exchange,
        "symbol": cmd.symbol, "client_order_id": cid, "occurred_at": _now(),
        "exchange_order_id": state.id, "side": state.side, "order_type": state.type,
        "amount": state.amount, "filled": state.filled, "remaining": state.remaining,
        "average_price": state.average, "fee": state.fee, "fee_currency": state.fee_currency,
    }


def accepted(cmd: Command, state: OrderState, cid: str) -> OrderAccepted:
    return OrderAccepted(event_id=event_id(cid, "accepted"), sequence=SEQ_ACCEPTED,
                         price=state.price, **_common(cmd, state, cid))  # type: ignore[arg-type]


def fill_progress_seq(filled: Decimal, amount: Decimal) -> int:
    ppm = int(filled * 1_000_000 / amount) if amount else 0
    return max(1, min(ppm, 1_000_000))


def progress(cmd: Command, state: OrderState, cid: str,
             command_id: str | None = None) -> Event | None:
    """The event that describes ``state`` beyond acceptance, or None (open, unfilled).

    ``command_id`` names the command that placed the order when ``cmd`` is a cancel."""
    common = _common(cmd, state, cid, command_id)
    if state.status == "closed":
        return OrderFilled(event_id=event_id(cid, "filled"), sequence=SEQ_FILLED,
                           **common)  # type: ignore[arg-type]
    if state.status in ("canceled", "expired"):
        return OrderCanceled(event_id=event_id(cid, "canceled"), sequence=SEQ_FINAL,
                             reason=state.status, **common)  # type: ignore[arg-type]
    if state.status == "rejected":
        return OrderRejected(event_id=event_id(cid, "rejected"), sequence=SEQ_FINAL,
                             reason=RejectReason.EXCHANGE_REJECTED,
                             message="exchange rejected the order",
                             **common)  # type: ignore[arg-type]
    if state.filled > 0:
        return OrderPartiallyFilled(
            event_id=event_id(cid, "partial", state.filled),
            sequence=fill_progress_seq(state.filled, state.amount),
            **common)  # type: ignore[arg-type]
    return None


def refusal(kind: type[OrderRejected] | type[OrderFailed], *, command_id: str, account: str,
            exchange: str, symbol: str, cid: str, reason: RejectReason, message: str,
            amount: Decimal = Decimal(0), side: str | None = None,
            order_type: str | None = None) -> Event:
    """A rejection/failure before (or without) a known exchange order."""
    tag = "rejected" if kind is OrderRejected else "failed"
    return kind(event_id=event_id(cid, tag), command_id=command_id, account=account,
                exchange=exchange, symbol=symbol, client_order_id=cid, sequence=SEQ_FINAL,
                occurred_at=_now(), amount=amount, remaining=amount, reason=reason,
                side=side, order_type=order_type, message=message[:500])
