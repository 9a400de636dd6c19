"""Idempotent order placement: look up by client order id, create at most once per
confirmed absence, and reconcile an ambiguous create instead of retrying it.

Why: Binance refuses a reused client id only while the first order is open, so
a blind retry after a timeout can double an order that already filled.

"Absent" is trusted only when a lookup *succeeded* after ``settle_s`` has
passed since the ambiguous create was *signed* (the last moment it could have been:
after ccxt's rate-limit throttle, reported by the adapter through ``CreateWatch``;
without that report, the moment the create call ended). ``settle_s`` covers
everything the exchange still accepts (each driver's ``request_window_s`` plus the
worst accepted clock skew), so a delayed create can no longer be executed behind
our back. A lookup that fails counts as "unknown", never as "absent".

Fencing: before every create, the fence in ``CREATE_FENCE`` (set by the command
handler) returns the monotonic time until which a create may be *sent*; past it
the create is not sent (``FenceExpired``). The adapter checks it again at signing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from worker.errors import AmbiguousOrderState, FenceExpired, PermanentError, TransientError
from worker.exchange.models import OrderRequest, OrderState

log = logging.getLogger(__name__)


class _Placer(Protocol):
    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None: ...

    async def create_order(self, request: OrderRequest) -> OrderState: ...


Fence = Callable[[], Awaitable[float]]
CREATE_FENCE: ContextVar[Fence | None] = ContextVar("ow_create_fence", default=None)
"""Set by whoever holds the command: returns the monotonic time until which a create
may be sent (None: no fence, e.g. the standalone exchange API)."""


@dataclass
class CreateWatch:
    """One create call: its sending deadline, and when it was last signed."""

    send_by: float | None = None
    signed_at: float | None = None


CREATE_WATCH: ContextVar[CreateWatch | None] = ContextVar("ow_create_watch", default=None)
"""The create in progress in this task; an adapter that signs requests reports the
signing moment here and refuses to sign past ``send_by``."""


def check_send_by(send_by: float | None) -> None:
    if send_by is not None and time.monotonic() > send_by:
        raise FenceExpired("create not sent: the proof that this worker still holds the "
                           "command is older than fence_s")


async def _watch() -> CreateWatch:
    fence = CREATE_FENCE.get()
    return CreateWatch(send_by=await fence() if fence is not None else None)


async def _create(placer: _Placer, req: OrderRequest, watch: CreateWatch) -> OrderState:
    check_send_by(watch.send_by)
    token = CREATE_WATCH.set(watch)
    try:
        return await placer.create_order(req)
    finally:
        CREATE_WATCH.reset(token)


def _signed_at(watch: CreateWatch) -> float:
    """The last moment the create could have been signed: as reported by the adapter,
    else now (the call has ended, so it was signed before)."""
    return watch.signed_at if watch.signed_at is not None else time.monotonic()


@dataclass(frozen=True)
class PlacementPolicy:
    lookups: int = 4
    """Minimum lookups after an ambiguous create before absence is trusted."""
    lookup_delay_s: float = 0.5
    """First pause between lookups; doubles up to 8x."""
    settle_s: float = 0.0
    """Minimum time after signing a create before 'not found' is trusted."""
    creates: int = 2
    """Create calls at most per placement (each after a confirmed absence)."""
    refused_backoff_s: float = 1.0
    on_reconcile: Callable[[], None] | None = None
    """Called for every ambiguous create that is reconciled (metrics)."""


async def _find_patiently(placer: _Placer, req: OrderRequest, policy: PlacementPolicy,
                          sent_at: float) -> OrderState | None:
    """The order, or None once absence is confirmed; AmbiguousOrderState if we cannot tell."""
    for attempt in range(1, policy.lookups * 3 + 1):
        try:
            found = await placer.find_order(req.symbol, req.client_order_id)
            looked = True
        except TransientError as exc:
            log.warning("reconcile lookup failed: %r", exc,
                        extra={"client_order_id": req.client_order_id})
            found, looked = None, False
        except PermanentError as exc:
            # e.g. the key lost its read permission: the create's fate is still unknown
            raise AmbiguousOrderState(f"reconcile lookup refused: {exc}") from exc
        if found is not None:
            return found
        waited = time.monotonic() - sent_at
        if looked and attempt >= policy.lookups and waited >= policy.settle_s:
            return None
        delay = policy.lookup_delay_s * 2 ** min(attempt - 1, 3)
        if waited < policy.settle_s:
            delay = min(delay, policy.settle_s - waited) if attempt >= policy.lookups else delay
        await asyncio.sleep(max(delay, 0.01))
    raise AmbiguousOrderState(f"could not confirm state of {req.client_order_id}")


async def place_once(placer: _Placer, req: OrderRequest, policy: PlacementPolicy,
                     on_reconcile: Callable[[], None] | None = None,
                     assume_absent: bool = False) -> OrderState:
    """Return the order for ``req.client_order_id``, creating it only after its
    absence was confirmed, at most ``policy.creates`` times."""
    absent = assume_absent
    last: Exception | None = None
    ambiguous = False
    for n in range(policy.creates):
        if not absent:
            existing = await placer.find_order(req.symbol, req.client_order_id)
            if existing is not None:
                return existing
        absent = False
        watch = await _watch()
        try:
            return await _create(placer, req, watch)
        except AmbiguousOrderState as exc:
            sent_at = _signed_at(watch)
            last, ambiguous = exc, True
            for hook in (on_reconcile, policy.on_reconcile):
                if hook is not None:
                    hook()
            log.warning("ambiguous create, reconciling: %r", exc,
                        extra={"client_order_id": req.client_order_id})
            found = await _find_patiently(placer, req, policy, sent_at)
            if found is not None:
                log.info("reconciled: adopted the order the exchange accepted",
                         extra={"client_order_id": req.client_order_id})
                return found
            absent = True
        except FenceExpired:
            raise  # not sent; the caller proves it still holds the command, then retries
        except TransientError as exc:
            # Refused before processing (429, timestamp outside recvWindow): nothing exists.
            last = exc
            await asyncio.sleep(policy.refused_backoff_s * (n + 1))
        except PermanentError:
            if n == 0:
                raise
            # A second create refused (e.g. duplicate id of an order we could not see).
            found = await _find_patiently(placer, req, policy, time.monotonic())
            if found is not None:
                return found
            raise
    if not ambiguous and isinstance(last, TransientError):
        raise last  # every create was refused outright: nothing exists, retry later
    found = await placer.find_order(req.symbol, req.client_order_id)
    if found is not None:
        return found
    raise AmbiguousOrderState(f"order state unknown after {policy.creates} creates: {last!r}")
