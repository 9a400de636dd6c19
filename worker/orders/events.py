"""Build events from order references and exchange order states (pure functions).

An ``OrderRef`` names the order an event is about (who placed it, where), so the
intake, the tracker and the cancel handlers build identical events for one
state: the event id depends only on the client order id and the state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from schemas import (
    CancelAllDone,
    CancelDone,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFailed,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderTrackingStalled,
    RejectReason,
    client_order_id,
    event_id,
)
from schemas.commands import Command
from schemas.events import SEQ_ACCEPTED, SEQ_FILLED, SEQ_FINAL
from schemas.tracking import TrackOrder
from worker.exchange.models import OrderState
from worker.logs import REDACTOR


class OrderRef(msgspec.Struct, frozen=True, kw_only=True):
    """The order an event is about."""

    command_id: str
    account: str
    exchange: str
    symbol: str
    client_order_id: str


def ref_of(cmd: Command, symbol: str | None = None, command_id: str | None = None) -> OrderRef:
    """The ref of the order ``cmd`` places (or, with ``command_id``, of its target)."""
    cid_of = command_id or cmd.command_id
    return OrderRef(command_id=cid_of, account=cmd.account, exchange=cmd.exchange,
                    symbol=symbol or getattr(cmd, "symbol", None) or "",
                    client_order_id=client_order_id(cmd.account, cid_of))


def ref_of_record(rec: TrackOrder) -> OrderRef:
    return OrderRef(command_id=rec.command_id, account=rec.account, exchange=rec.exchange,
                    symbol=rec.symbol, client_order_id=rec.client_order_id)


def _now() -> datetime:
    return datetime.now(UTC)


def _base(ref: OrderRef) -> dict[str, Any]:
    return {"command_id": ref.command_id, "account": ref.account, "exchange": ref.exchange,
            "symbol": ref.symbol, "client_order_id": ref.client_order_id,
            "occurred_at": _now()}


def _state(state: OrderState) -> dict[str, Any]:
    return {"exchange_order_id": state.id, "side": state.side, "order_type": state.type,
            "amount": state.amount, "filled": state.filled, "remaining": state.remaining,
            "average_price": state.average, "fee": state.fee,
            "fee_currency": state.fee_currency}


def accepted(ref: OrderRef, state: OrderState) -> OrderAccepted:
    return OrderAccepted(event_id=event_id(ref.client_order_id, "accepted"),
                         sequence=SEQ_ACCEPTED, price=state.price, **_base(ref), **_state(state))


def fill_progress_seq(filled: Decimal, amount: Decimal) -> int:
    ppm = int(filled * 1_000_000 / amount) if amount else 0
    return max(1, min(ppm, 1_000_000))


def progress(ref: OrderRef, state: OrderState) -> Event | None:
    """The event that describes ``state`` beyond acceptance, or None (open, unfilled)."""
    cid, common = ref.client_order_id, {**_base(ref), **_state(state)}
    if state.status == "closed":
        return OrderFilled(event_id=event_id(cid, "filled"), sequence=SEQ_FILLED, **common)
    if state.status in ("canceled", "expired"):
        return OrderCanceled(event_id=event_id(cid, "canceled"), sequence=SEQ_FINAL,
                             reason=state.status, **common)
    if state.status == "rejected":
        return OrderRejected(event_id=event_id(cid, "rejected"), sequence=SEQ_FINAL,
                             reason=RejectReason.EXCHANGE_REJECTED,
                             message="exchange rejected the order", **common)
    if state.filled > 0:
        return OrderPartiallyFilled(event_id=event_id(cid, "partial", state.filled),
                                    sequence=fill_progress_seq(state.filled, state.amount),
                                    **common)
    return None


def refusal(kind: type[OrderRejected] | type[OrderFailed], ref: OrderRef, reason: RejectReason,
            message: str, *, amount: Decimal = Decimal(0), side: str | None = None,
            order_type: str | None = None) -> Event:
    """A rejection/failure of a PlaceOrder without (or before) an exchange order.
    The reason is part of the id: two refusals for different reasons are different states."""
    tag = "rejected" if kind is OrderRejected else "failed"
    return kind(event_id=event_id(ref.client_order_id, f"{tag}:{reason}"), sequence=SEQ_FINAL,
                amount=amount, remaining=amount, reason=reason, side=side,
                order_type=order_type, message=REDACTOR.scrub(message)[:500], **_base(ref))


def stalled(ref: OrderRef, reason: RejectReason, message: str) -> OrderTrackingStalled:
    return OrderTrackingStalled(event_id=event_id(ref.client_order_id, "stalled", str(reason)),
                                sequence=SEQ_ACCEPTED, reason=reason,
                                message=REDACTOR.scrub(message)[:500],
                                **_base(ref))


def cancel_done(cancel: OrderRef, target: OrderRef, state: OrderState | None) -> CancelDone:
    """Outcome of a CancelOrder: the target's terminal state (None: it was never placed)."""
    status = "not_placed" if state is None else {"closed": "filled"}.get(state.status,
                                                                         state.status)
    extra = _state(state) if state is not None else {}
    return CancelDone(event_id=event_id(cancel.client_order_id, "cancel_done", status),
                      sequence=SEQ_FINAL, target_command_id=target.command_id,
                      target_client_order_id=target.client_order_id, order_status=status,
                      **_base(cancel), **extra)


def cancel_rejected(cancel: OrderRef, reason: RejectReason, message: str,
                    target: OrderRef | None = None) -> CancelRejected:
    return CancelRejected(
        event_id=event_id(cancel.client_order_id, "cancel_rejected", str(reason)),
        sequence=SEQ_FINAL, reason=reason, message=REDACTOR.scrub(message)[:500],
        target_command_id=target.command_id if target else None,
        target_client_order_id=target.client_order_id if target else None, **_base(cancel))


def cancel_all_done(cancel: OrderRef, canceled: list[str],
                    already_closed: list[str]) -> CancelAllDone:
    return CancelAllDone(event_id=event_id(cancel.client_order_id, "cancel_all_done"),
                         sequence=SEQ_FINAL, canceled=sorted(canceled),
                         already_closed=sorted(already_closed), **_base(cancel))
