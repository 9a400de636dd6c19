"""Wire schemas of orderworker: commands in, events out.

All messages are frozen, tagged msgspec Structs (tag field ``kind``) joined in
one union per direction. Schemas evolve only by adding fields with defaults;
``schema_version`` says which revision produced a message.
"""

from schemas.commands import CancelAll, CancelOrder, Command, PlaceOrder
from schemas.events import (
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
)
from schemas.ids import canonical_account, client_order_id, event_id

__all__ = [
    "CancelAll",
    "CancelAllDone",
    "CancelDone",
    "CancelOrder",
    "CancelRejected",
    "Command",
    "Event",
    "OrderAccepted",
    "OrderCanceled",
    "OrderFailed",
    "OrderFilled",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderTrackingStalled",
    "PlaceOrder",
    "RejectReason",
    "canonical_account",
    "client_order_id",
    "event_id",
]
