"""The one error hierarchy of orderworker; every failure maps to one outcome.

    OrderWorkerError
    ├── CommandError            bad input      -> OrderRejected + dead-letter, no retry
    │   └── StaleCommand
    ├── RiskRejected            pre-trade risk -> OrderRejected, no retry
    └── ExchangeError
        ├── TransientError      network, 5xx, maintenance -> bounded retry, backoff+jitter
        │   ├── RateLimited     429 / DDoS protection     -> same, longer backoff
        │   ├── FenceExpired    create not sent: no fresh proof this worker still
        │   │                   holds the command -> retried after a new proof
        │   └── FenceLost       no proof possible (channel gone) -> stop, requeue
        ├── PermanentError      exchange said no          -> OrderRejected, no retry
        │   ├── InvalidOrder
        │   ├── InsufficientFunds
        │   ├── AuthError
        │   └── OrderNotFound
        └── AmbiguousOrderState create may or may not have happened -> reconcile by
            │                   client order id, never blind retry
            └── DuplicateClientOrderId  the exchange already has this client id
"""

from __future__ import annotations

from schemas.events import RejectReason


class OrderWorkerError(Exception):
    reason: RejectReason = RejectReason.INVALID


class CommandError(OrderWorkerError):
    reason = RejectReason.INVALID


class StaleCommand(CommandError):
    reason = RejectReason.STALE


class RiskRejected(OrderWorkerError):
    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ExchangeError(OrderWorkerError):
    reason = RejectReason.EXCHANGE_REJECTED


class TransientError(ExchangeError):
    reason = RejectReason.RETRIES_EXHAUSTED


class RateLimited(TransientError):
    pass


class FenceExpired(TransientError):
    """A create was *not* sent: the broker round trip proving this worker still holds
    the command is older than ``fence_s`` (see worker.orders.place)."""


class FenceLost(TransientError):
    """This worker cannot show it still holds the command (its channel is gone or does
    not answer): it must not act on it any more; the broker redelivers it."""


class PermanentError(ExchangeError):
    reason = RejectReason.EXCHANGE_REJECTED


class InvalidOrder(PermanentError):
    reason = RejectReason.EXCHANGE_INVALID_ORDER


class InsufficientFunds(PermanentError):
    reason = RejectReason.EXCHANGE_INSUFFICIENT_FUNDS


class AuthError(PermanentError):
    reason = RejectReason.EXCHANGE_AUTH


class OrderNotFound(PermanentError):
    reason = RejectReason.ORDER_NOT_FOUND


class UnknownExchange(PermanentError):
    reason = RejectReason.UNKNOWN_EXCHANGE


class AmbiguousOrderState(ExchangeError):
    """A create call failed in a way that leaves the order's existence unknown."""

    reason = RejectReason.AMBIGUOUS


class DuplicateClientOrderId(AmbiguousOrderState):
    """The exchange says an order with this client id exists: reconcile by lookup."""


class FactsUnreadable(Exception):
    """A shard's memo queue could not be read whole (worker.broker.memo). Not an exchange
    error and never a refusal: the command is handed back to the broker undecided."""
