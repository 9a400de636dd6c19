"""Order events published by the worker.

Every event names one order (``client_order_id``) and one order *state*:

* ``event_id`` is derived from (client_order_id, kind, cumulative filled) for
  order states, and from (client_order_id, kind, reason or status) for refusals
  and command outcomes, so a state re-observed after a redelivery, by another
  worker or by a cancel command has the same id, and two different states never
  share one; consumers dedupe on it.
* Cancel and cancel-all outcomes name the *cancel command* (its own
  ``command_id`` and ``client_order_id``, derived from it) and point at the
  target with ``target_command_id`` / ``target_client_order_id``.
* ``sequence`` orders the events of one order and is also derived from state:
  0 accepted, 1..1_000_000 partial fill progress in parts per million of the
  amount, 1_000_001 filled, 1_000_002 canceled / rejected / failed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import msgspec

SEQ_ACCEPTED = 0
SEQ_FILLED = 1_000_001
SEQ_FINAL = 1_000_002


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    INVALID = "invalid"
    STALE = "stale"
    RISK_MAX_NOTIONAL = "risk_max_notional"
    RISK_POSITION_LIMIT = "risk_position_limit"
    RISK_BALANCE = "risk_balance"
    RISK_PRICE_PROTECTION = "risk_price_protection"
    UNKNOWN_EXCHANGE = "unknown_exchange"
    EXCHANGE_INVALID_ORDER = "exchange_invalid_order"
    EXCHANGE_INSUFFICIENT_FUNDS = "exchange_insufficient_funds"
    EXCHANGE_AUTH = "exchange_auth"
    EXCHANGE_REJECTED = "exchange_rejected"
    ORDER_NOT_FOUND = "order_not_found"
    RETRIES_EXHAUSTED = "retries_exhausted"
    AMBIGUOUS = "ambiguous_order_state"
    NOT_PLACED = "not_placed"
    CANCELED_BEFORE_PLACEMENT = "canceled_before_placement"
    DEAD_LETTERED = "dead_lettered"
    UNFOLLOWABLE = "unfollowable"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    event_id: str
    command_id: str
    account: str
    exchange: str
    symbol: str
    client_order_id: str
    sequence: int
    occurred_at: datetime
    exchange_order_id: str | None = None
    side: str | None = None
    order_type: str | None = None
    amount: Decimal = Decimal(0)
    filled: Decimal = Decimal(0)
    remaining: Decimal = Decimal(0)
    average_price: Decimal | None = None
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None
    schema_version: int = 1


class OrderAccepted(_Event, frozen=True, tag="order_accepted"):
    price: Decimal | None = None


class OrderPartiallyFilled(_Event, frozen=True, tag="order_partially_filled"):
    pass


class OrderFilled(_Event, frozen=True, tag="order_filled"):
    pass


class OrderCanceled(_Event, frozen=True, tag="order_canceled"):
    reason: str = "canceled"


class OrderRejected(_Event, frozen=True, tag="order_rejected"):
    """Permanent refusal: validation, risk, or the exchange said no. Not retried."""

    reason: RejectReason
    message: str


class OrderFailed(_Event, frozen=True, tag="order_failed"):
    """No order exists and none will be placed: retries ran out before any create was
    sent, or the exchange confirmed the order absent after an unknown outcome."""

    reason: RejectReason
    message: str


class OrderTrackingStalled(_Event, frozen=True, tag="order_tracking_stalled"):
    """Alert, not an outcome: a live order cannot be followed right now (e.g. the API key
    was revoked). The worker keeps trying; the order's terminal event comes later."""

    reason: RejectReason
    message: str


class CancelDone(_Event, frozen=True, tag="cancel_done"):
    """The target order is terminal after the cancel; ``order_status`` says how it ended
    (``canceled``, or ``filled`` when a fill won the race, or ``not_placed``)."""

    target_command_id: str
    target_client_order_id: str
    order_status: str


class CancelRejected(_Event, frozen=True, tag="cancel_rejected"):
    """The cancel (or cancel-all) could not act: no such order, or it was refused."""

    reason: RejectReason
    message: str
    target_command_id: str | None = None
    target_client_order_id: str | None = None


class CancelAllDone(_Event, frozen=True, tag="cancel_all_done"):
    """Every open order of the account (and symbol, if given) had a cancel sent."""

    canceled: list[str] = []
    """Client order ids of the orders canceled."""
    already_closed: list[str] = []


Event = (
    OrderAccepted
    | OrderPartiallyFilled
    | OrderFilled
    | OrderCanceled
    | OrderRejected
    | OrderFailed
    | OrderTrackingStalled
    | CancelDone
    | CancelRejected
    | CancelAllDone
)

TERMINAL_EVENTS = (OrderFilled, OrderCanceled, OrderRejected, OrderFailed)
"""Events that end an order."""
OUTCOME_EVENTS = (*TERMINAL_EVENTS, CancelDone, CancelRejected, CancelAllDone)
"""Events that end a command: the one outcome every command gets, under its command_id."""

_decoder = msgspec.json.Decoder(Event)
_encoder = msgspec.json.Encoder()


def decode_event(body: bytes) -> Event:
    event: Event = _decoder.decode(body)
    return event


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def event_kind(event: Event) -> str:
    """The tag (``order_filled``...) used in routing keys and stores."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag
