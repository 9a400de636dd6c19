"""Idempotent order placement: look up by client order id, create at most once
per reconciliation, and reconcile an ambiguous create instead of retrying it.

Why: Binance refuses a reused client id only while the first order is open, so
a blind retry after a timeout can double an order that already filled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from worker.errors import AmbiguousOrderState, PermanentError, TransientError
from worker.exchange.models import OrderRequest, OrderState

log = logging.getLogger(__name__)


class _Placer(Protocol):
    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None: ...

    async def create_order(self, request: OrderRequest) -> OrderState: ...


class PlacementPolicy:
    def __init__(self, lookups: int = 4, lookup_delay_s: float = 0.5, creates: int = 2,
                 refused_backoff_s: float = 1.0) -> None:
        self.lookups = lookups
        self.lookup_delay_s = lookup_delay_s
        self.creates = creates
        self.refused_backoff_s = refused_backoff_s


async def _find_patiently(placer: _Placer, req: OrderRequest, policy: PlacementPolicy,
                          ) -> OrderState | None:
    """An accepted order can take a moment to become visible: look a few times."""
    for attempt in range(policy.lookups):
        try:
            found = await placer.find_order(req.symbol, req.client_order_id)
        except TransientError as exc:
            log.warning("reconcile lookup failed", extra={"client_order_id":
                        req.client_order_id, "error": repr(exc)})
            found = None
        if found is not None:
            return found
        if attempt + 1 < policy.lookups:
            await asyncio.sleep(policy.lookup_delay_s * (2**attempt))
    return None


async def place_once(placer: _Placer, req: OrderRequest, policy: PlacementPolicy,
                     on_reconcile: Callable[[], None] | None = None,
                     assume_absent: bool = False) -> OrderState:
    """Return the order for ``req.client_order_id``, creating it at most ``creates`` times,
    each create preceded by a lookup that found nothing."""
    last: Exception | None = None
    ambiguous = False
    for n in range(policy.creates):
        skip = assume_absent and n == 0
        existing = None if skip else await placer.find_order(req.symbol, req.client_order_id)
        if existing is not None:
            if n:
                log.info("reconciled: adopted existing order",
                         extra={"client_order_id": req.client_order_id})
            return existing
        try:
            return await placer.create_order(req)
        except AmbiguousOrderState as exc:
            last, ambiguous = exc, True
            if on_reconcile is not None:
                on_reconcile()
            log.warning("ambiguous create, reconciling",
                        extra={"client_order_id": req.client_order_id, "error": repr(exc)})
            found = await _find_patiently(placer, req, policy)
            if found is not None:
                return found
        except TransientError as exc:
            # Refused before processing (429, maintenance): the order does not exist.
            last = exc
            await asyncio.sleep(policy.refused_backoff_s * (n + 1))
        except PermanentError as exc:
            if n == 0:
                raise
            # A retried create refused (e.g. duplicate client id of a hidden open order).
            found = await _find_patiently(placer, req, policy)
            if found is not None:
                return found
            raise exc
    # Existence still unknown or creates exhausted: one last look, then give up.
    found = await placer.find_order(req.symbol, req.client_order_id)
    if found is not None:
        return found
    if not ambiguous and isinstance(last, TransientError):
        raise last  # every create was refused outright: nothing exists
    raise AmbiguousOrderState(f"order state unknown after {policy.creates} creates: {last!r}")
