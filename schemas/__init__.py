"""Wire schemas of orderworker: commands in, events out.

All messages are frozen, tagged msgspec Structs (tag field ``kind``) joined in
one union per direction. Schemas evolve only by adding fields with defaults;
``schema_version`` says which revision produced a message.
"""

from schemas.commands import CancelOrder, Command, PlaceOrder
from schemas.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderFailed,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    RejectReason,
)
from schemas.ids import client_order_id, event_id

__all__ = [
    "CancelOrder",
    "Command",
    "Event",
    "OrderAccepted",
    "OrderCanceled",
    "OrderFailed",
    "OrderFilled",
    "OrderPartiallyFilled",
    "OrderRejected",
    "PlaceOrder",
    "RejectReason",
    "client_order_id",
    "event_id",
]
