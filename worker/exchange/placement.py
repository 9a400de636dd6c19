"""Idempotent order placement: look up by client order id, create at most once per
confirmed absence, and reconcile an ambiguous create instead of retrying it.

Why: Binance refuses a reused client id only while the first order is open, so
a blind retry after a timeout can double an order that already filled.

"Absent" is trusted only when a lookup *succeeded* after ``settle_s`` has
passed since the ambiguous create was sent. ``settle_s`` must cover the
exchange's request window (Binance drops a request older than ``recvWindow``),
so a delayed create can no longer be executed behind our back. A lookup that
fails counts as "unknown", never as "absent".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from worker.errors import AmbiguousOrderState, PermanentError, TransientError
from worker.exchange.models import OrderRequest, OrderState

log = logging.getLogger(__name__)


class _Placer(Protocol):
    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None: ...

    async def create_order(self, request: OrderRequest) -> OrderState: ...


@dataclass(frozen=True)
class PlacementPolicy:
    lookups: int = 4
    """Minimum lookups after an ambiguous create before absence is trusted."""
    lookup_delay_s: float = 0.5
    """First pause between lookups; doubles up to 8x."""
    settle_s: float = 0.0
    """Minimum time after sending a create before 'not found' is trusted."""
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
        sent_at = time.monotonic()
        try:
            return await placer.create_order(req)
        except AmbiguousOrderState as exc:
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
        except TransientError as exc:
            # Refused before processing (429, timestamp outside recvWindow): nothing exists.
            last = exc
            await asyncio.sleep(policy.refused_backoff_s * (n + 1))
        except PermanentError:
            if n == 0:
                raise
            # A second create refused (e.g. duplicate id of an order we could not see).
            found = await _find_patiently(placer, req, policy, sent_at)
            if found is not None:
                return found
            raise
    if not ambiguous and isinstance(last, TransientError):
        raise last  # every create was refused outright: nothing exists, retry later
    found = await placer.find_order(req.symbol, req.client_order_id)
    if found is not None:
        return found
    raise AmbiguousOrderState(f"order state unknown after {policy.creates} creates: {last!r}")
